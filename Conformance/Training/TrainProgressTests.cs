using System.Text.RegularExpressions;
using Llm.Cpu;
using Llm.Tools;
using Llm.Training;
using Spectre.Console;
using Xunit;

namespace Llm.Conformance.Training;

/// <summary>train's display: the progress line fits the terminal, labels its times, ends on the last validation
/// value; plain output when redirected; an interrupted run is saved and says how to continue.</summary>
public sealed class TrainProgressTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-progress-" + Guid.NewGuid().ToString("N")[..8]);

    public TrainProgressTests() => Directory.CreateDirectory(_dir);
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    /// <summary>A terminal of <paramref name="width"/> columns that writes into <paramref name="writer"/>.</summary>
    private static IAnsiConsole Terminal(StringWriter writer, int width)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer), Interactive = InteractionSupport.Yes, Ansi = AnsiSupport.Yes,
        });
        console.Profile.Width = width;
        return console;
    }

    private const double FinalValidation = 1.2345;

    /// <summary>A run's events without a model: steps with validations every 2 steps and the last validation
    /// after the last step, as TrainingRun.Run sends them.</summary>
    private static Action<Action<TrainingEvent>, CancellationToken> FakeRun(int first, int total) => (onEvent, stop) =>
    {
        for (int step = first + 1; step <= total && !stop.IsCancellationRequested; step++)
        {
            onEvent(new StepEvent(new StepResult(step, 9.8765 - step * 1e-6, 1.0, 3e-4f, 1024, TimeSpan.FromMilliseconds(2)), total));
            if (step == total) onEvent(new ValidationEvent(step, FinalValidation));
            else if (step % 2 == 0) onEvent(new ValidationEvent(step, 5.4321));
        }
    };

    /// <summary>The lines a terminal would show: cursor moves start a new line, other escape codes are dropped.</summary>
    private static string[] ScreenLines(string raw)
    {
        string lines = Regex.Replace(raw, "\u001b\\[[0-9]*[ABEF]", "\n");
        lines = Regex.Replace(lines, "\u001b\\[[0-9;?]*[A-Za-z]", "");
        return lines.Split(['\n', '\r']);
    }

    /// <summary>The last frame Spectre drew: the text after its last cursor move up.</summary>
    private static string LastFrame(string raw) =>
        Regex.Replace(Regex.Split(raw, "\u001b\\[[0-9]*A").Last(), "\u001b\\[[0-9;?]*[A-Za-z]", "");

    [Theory]
    [InlineData(80)]
    [InlineData(200)]
    public void SkippedStepsAreSaidOnTheProgressLineAndInPlainOutput(int width)
    {
        Action<Action<TrainingEvent>, CancellationToken> run = (onEvent, stop) =>
        {
            onEvent(new StepEvent(new StepResult(1, 5.0, 1.0, 3e-4f, 1024, TimeSpan.FromMilliseconds(2)), 3000));
            onEvent(new StepEvent(new StepResult(2, double.NaN, double.NaN, 3e-4f, 1024, TimeSpan.FromMilliseconds(2), Skipped: true), 3000, SkippedSteps: 1));
            onEvent(new StepEvent(new StepResult(3, 4.9, 1.0, 3e-4f, 1024, TimeSpan.FromMilliseconds(2)), 3000, SkippedSteps: 1));
        };
        var raw = new StringWriter();
        TrainProgress.Show(run, 0, 3000, TextWriter.Null, Terminal(raw, width), CancellationToken.None);
        string last = LastFrame(raw.ToString());
        Assert.Contains("skipped 1", last);
        Assert.All(ScreenLines(raw.ToString()), l => Assert.True(l.Length <= width, $"a line of {l.Length} columns:\n{l}"));

        var plain = new StringWriter();
        TrainProgress.Show(run, 0, 3000, plain, null, CancellationToken.None);
        Assert.Contains("step 2: skipped, no update (loss NaN, gradient norm NaN)", plain.ToString());
    }

    /// <summary>MoE runs: the auxiliary (load-balancing) loss and the dropped share of routed slots are on the line;
    /// runs without them show neither.</summary>
    [Fact]
    public void AuxiliaryLossAndDroppedFractionAreShownWhenPresent()
    {
        Action<Action<TrainingEvent>, CancellationToken> run = (onEvent, stop) =>
        {
            onEvent(new StepEvent(new StepResult(1, 5.0, 1.0, 3e-4f, 1024, TimeSpan.FromMilliseconds(2)) { AuxiliaryLoss = 0.0123, DroppedFraction = 0.05 }, 50));
            onEvent(new StepEvent(new StepResult(50, 4.0, 1.0, 3e-4f, 1024, TimeSpan.FromMilliseconds(2)), 50));
        };
        var plain = new StringWriter();
        TrainProgress.Show(run, 0, 50, plain, null, CancellationToken.None);
        var lines = plain.ToString().Split('\n');
        Assert.Contains("aux 0.0123  dropped 5.0", lines[0]);
        Assert.DoesNotContain("aux", lines[1]);
        Assert.DoesNotContain("dropped", lines[1]);
    }

    [Theory]
    [InlineData(80, 3000)]
    [InlineData(80, 1_000_000)]
    [InlineData(100, 3000)]
    [InlineData(120, 3000)]
    [InlineData(200, 250_000)]
    public void ProgressLineFitsTheTerminalAndEndsOnTheLastValidation(int width, int total)
    {
        var raw = new StringWriter();
        var outcome = TrainProgress.Show(FakeRun(total - 6, total), total - 6, total, TextWriter.Null, Terminal(raw, width), CancellationToken.None);

        string output = raw.ToString();
        var lines = ScreenLines(output);
        var widest = lines.OrderByDescending(l => l.Length).First();
        Assert.True(widest.Length <= width, $"a line of {widest.Length} columns on a terminal of {width}:\n{widest}");
        string last = LastFrame(output);
        // one row: Spectre wraps a row that does not fit, which sends the percentage and times down the screen
        var rows = last.Split(['\n', '\r']).Where(l => l.Trim().Length > 0).ToList();
        Assert.True(rows.Count == 1, $"the progress takes {rows.Count} rows:\n{string.Join('\n', rows)}");
        Assert.Contains($"{total}/{total}", last);
        Assert.Contains("elapsed 0:00:", last);
        Assert.Contains("left ", last);
        Assert.Contains("100%", last);
        Assert.Contains("val 1.23", last);   // the validation that came after the last step
        Assert.DoesNotContain("5.432", last);
        Assert.Equal(FinalValidation, outcome.Validation);
        // the bar is bounded: a wide terminal does not stretch it past MaxBarWidth
        int bar = last.Count(c => c == '━');
        Assert.InRange(bar, 5, TrainProgress.MaxBarWidth);
        if (width >= 120) Assert.Contains("tok/s", last);
    }

    [Fact]
    public void RedirectedOutputPrintsPlainLinesEndingOnTheLastValidation()
    {
        var stdout = new StringWriter();
        var outcome = TrainProgress.Show(FakeRun(0, 6), 0, 6, stdout, console: null, CancellationToken.None);
        var lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.DoesNotContain('\u001b', stdout.ToString());
        Assert.StartsWith("step 1/6  loss 9.8765", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("step 6/6  loss "));
        Assert.Equal("step 6: validation loss 1.2345", lines[^1]);
        Assert.Equal(FinalValidation, outcome.Validation);
    }

    private TrainingRun MicroRun(string folder, int steps) => TrainingRun.Start(new CpuBackend(), new TrainOptions
    {
        Preset = "micro", Steps = steps, Batch = 2, Seq = 16, EvalEvery = 2, EvalBatches = 1, CheckpointEvery = 100, Out = folder,
    });

    /// <summary>Cancels <paramref name="stop"/> when a line containing <paramref name="trigger"/> is written: a Ctrl-C
    /// that arrives while that step is on screen.</summary>
    private sealed class CancelOnLine(string trigger, CancellationTokenSource stop) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.Contains(trigger) == true) stop.Cancel();
        }
    }

    [Fact]
    public void InterruptedRunSavesACheckpointAndSaysHowToContinue()
    {
        string folder = Path.Combine(_dir, "run");
        var run = MicroRun(folder, steps: 5);
        using var stop = new CancellationTokenSource();
        var stdout = new CancelOnLine("step 1/5", stop);

        int code = TrainProgress.Run(run, "cpu", stdout, console: null, stop.Token);

        Assert.Equal(TrainProgress.InterruptedExitCode, code);
        Assert.Equal(1, run.Trainer.Optimizer.Step);  // stopped at the step boundary after the Ctrl-C
        string step = Path.Combine(folder, "step_000001");
        Assert.True(File.Exists(Path.Combine(step, "model.safetensors")), stdout.ToString());
        Assert.True(File.Exists(Path.Combine(step, "training_state.safetensors")));
        string last = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1].Trim();
        Assert.Equal($"interrupted at step 1; checkpoint {step}; continue with: llm train --resume {step}", last);
        Assert.False(File.Exists(Path.Combine(folder, "loss.png")));  // the end-of-run summary did not run

        // the printed command continues the run to its end
        var resumed = new StringWriter();
        var errors = new StringWriter();
        Assert.True(Cli.Run(["train", "--backend", "cpu", "--resume", step], resumed, errors) == 0, errors + resumed.ToString());
        Assert.Equal("step_000005", File.ReadAllText(Path.Combine(folder, "latest")).Trim());
    }

    [Fact]
    public void InterruptedRunOnATerminalShowsTheCursorAgain()
    {
        string folder = Path.Combine(_dir, "tty");
        var run = MicroRun(folder, steps: 3);
        using var stop = new CancellationTokenSource();
        stop.Cancel();  // Ctrl-C before the first step
        var raw = new StringWriter();

        int code = TrainProgress.Run(run, "cpu", raw, Terminal(raw, 80), stop.Token);

        Assert.Equal(TrainProgress.InterruptedExitCode, code);
        string output = raw.ToString();
        int hidden = output.LastIndexOf("\u001b[?25l", StringComparison.Ordinal);
        int shown = output.LastIndexOf("\u001b[?25h", StringComparison.Ordinal);
        Assert.True(hidden >= 0 && shown > hidden, "the cursor stays hidden after the interruption");
        Assert.Contains($"interrupted at step 0; checkpoint {Path.Combine(folder, "step_000000")}", output);
        Assert.True(File.Exists(Path.Combine(folder, "step_000000", "model.safetensors")));
    }
}
