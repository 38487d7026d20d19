using Llm.Training;

namespace Llm.Tools;

/// <summary>The loss curve of a run folder as loss.png (ScottPlot): train loss per step, validation loss, unigram line.</summary>
internal static class LossPlot
{
    public static string Save(string runFolder, IReadOnlyList<TrainingRun.MetricsRow> rows, double unigram)
    {
        var plot = Build(rows, unigram);
        string path = Path.Combine(runFolder, "loss.png");
        string tmp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8] + ".png";
        plot.SavePng(tmp, 900, 550);
        File.Move(tmp, path, overwrite: true);
        return path;
    }

    /// <summary>The figure <see cref="Save"/> writes, before rendering.</summary>
    internal static ScottPlot.Plot Build(IReadOnlyList<TrainingRun.MetricsRow> rows, double unigram)
    {
        var plot = new ScottPlot.Plot();
        var train = plot.Add.Scatter(rows.Select(r => (double)r.Step).ToArray(), rows.Select(r => r.TrainLoss).ToArray());
        train.LegendText = "train";
        train.MarkerSize = 0;
        var val = rows.Where(r => !double.IsNaN(r.ValidationLoss)).ToList();
        if (val.Count > 0)
        {
            var v = plot.Add.Scatter(val.Select(r => (double)r.Step).ToArray(), val.Select(r => r.ValidationLoss).ToArray());
            v.LegendText = "validation";
            v.MarkerSize = 6;
        }
        var baseline = plot.Add.HorizontalLine(unigram);
        baseline.LegendText = "unigram baseline";
        baseline.LinePattern = ScottPlot.LinePattern.Dashed;
        plot.Title("GPT-2 training loss");
        plot.XLabel("step");
        plot.YLabel("cross-entropy (nats/token)");
        // beside the data area, not inside it: no corner of the data area is always empty (the curves end lower right,
        // a diverging run ends upper right, the baseline crosses the whole width), so only outside is never in the way
        plot.ShowLegend(ScottPlot.Edge.Right);
        return plot;
    }
}
