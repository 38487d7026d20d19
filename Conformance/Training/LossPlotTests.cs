using Llm.Tools;
using Llm.Training;
using Xunit;

namespace Llm.Conformance.Training;

/// <summary>loss.png: the legend sits beside the data area, where it cannot cover the curves, and the file is written.</summary>
public sealed class LossPlotTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-plot-" + Guid.NewGuid().ToString("N")[..8]);

    public LossPlotTests() => Directory.CreateDirectory(_dir);
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    /// <summary>A falling loss with a validation point every 10 steps.</summary>
    private static List<TrainingRun.MetricsRow> Rows() =>
        Enumerable.Range(1, 100).Select(s => new TrainingRun.MetricsRow(s, 5.5 * Math.Exp(-s / 30.0) + 1.2,
            s % 10 == 0 ? 5.5 * Math.Exp(-s / 30.0) + 1.4 : double.NaN, 3e-4f, 1.0)).ToList();

    [Fact]
    public void LegendIsOutsideTheDataArea()
    {
        var plot = LossPlot.Build(Rows(), unigram: 3.09);
        Assert.False(plot.Legend.IsVisible);  // the legend inside the data area is off
        var panel = Assert.Single(plot.Axes.GetPanels().OfType<ScottPlot.Panels.LegendPanel>());
        Assert.Equal(ScottPlot.Edge.Right, panel.Edge);
        Assert.True(panel.IsVisible);
        // it lists the three series
        var labels = plot.GetPlottables().Select(p => p.LegendItems.FirstOrDefault()?.LabelText).ToList();
        Assert.Equal(["train", "validation", "unigram baseline"], labels);
    }

    [Fact]
    public void SaveWritesAPng()
    {
        string path = LossPlot.Save(_dir, Rows(), unigram: 3.09);
        Assert.Equal(Path.Combine(_dir, "loss.png"), path);
        byte[] bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length > 1000);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
        Assert.Single(Directory.GetFiles(_dir));  // no temporary file left behind
    }
}
