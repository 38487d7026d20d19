using System.Globalization;
using Llm.Training;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Llm.Tools;

/// <summary>
/// `train`'s display: on a terminal one progress line that fits 80 columns (step, losses, bar, percentage, "elapsed"
/// and "left" times); with the output redirected, plain lines. Ctrl-C stops the run after the step in flight, saves a
/// checkpoint, says how to continue, and exits with 130.
/// </summary>
internal static class TrainProgress
{
    /// <summary>128 + SIGINT: what a shell reports for a program stopped by Ctrl-C.</summary>
    public const int InterruptedExitCode = 130;

    private const string ShowCursor = "\u001b[?25h";

    /// <summary>Runs <paramref name="run"/> to its last step (or to Ctrl-C) with the display on
    /// <paramref name="stdout"/>; returns the exit code.</summary>
    public static int Run(TrainingRun run, string backendName, TextWriter stdout)
    {
        bool terminal = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected;
        var console = terminal ? AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stdout) }) : null;
        using var stop = new CancellationTokenSource();
        void OnCtrlC(object? sender, ConsoleCancelEventArgs e)
        {
            if (stop.IsCancellationRequested)
            {
                // a second Ctrl-C ends the process at once (a big model's step can take long): restore the cursor first
                if (terminal) Console.Out.Write(ShowCursor);
                return;
            }
            e.Cancel = true;  // the first only asks the loop to stop at the next step boundary
            stop.Cancel();
        }
        Console.CancelKeyPress += OnCtrlC;
        try
        {
            return Run(run, backendName, stdout, console, stop.Token);
        }
        finally
        {
            Console.CancelKeyPress -= OnCtrlC;
        }
    }

    /// <summary>The display around <paramref name="run"/>: <paramref name="console"/> draws the progress line (null:
    /// plain lines on <paramref name="stdout"/>); once <paramref name="stop"/> is cancelled the run ends at a step
    /// boundary and is saved.</summary>
    internal static int Run(TrainingRun run, string backendName, TextWriter stdout, IAnsiConsole? console, CancellationToken stop)
    {
        var o = run.Options;
        double unigram = run.Data.TrainUnigramEntropy;
        stdout.WriteLine($"{(o.ConfigPath is null ? $"{(o.IsEncoderDecoder ? "encoder-decoder" : "decoder")} '{o.Preset}'" : o.ConfigPath)} ({run.Model.Parameters.Count:N0} parameters) on {backendName}; tokenizer {run.Tokenizer.Name}; objective {run.Objective.Name}; " +
                         $"{run.Data.TrainCount:N0} train / {run.Data.ValidationCount:N0} validation tokens; B={o.Batch} T={o.Seq}; unigram baseline {unigram:F3} nats/token");
        stdout.WriteLine(run.Sample());
        var shown = Show(run.Run, run.Trainer.CompletedSteps, o.Steps, stdout, console, stop);

        int step = run.Trainer.CompletedSteps;
        if (stop.IsCancellationRequested && !run.IsComplete)
        {
            // the loop saved this very step already when the interruption came right after a checkpoint
            string folder = shown.CheckpointStep == step && shown.Checkpoint is { } saved ? saved : run.SaveCheckpoint();
            if (console is not null && console.Profile.Capabilities.Ansi) stdout.Write(ShowCursor);
            string quoted = folder.Contains(' ') ? $"\"{folder}\"" : folder;
            stdout.WriteLine($"interrupted at step {step}; checkpoint {folder}; continue with: llm train --resume {quoted}");
            return InterruptedExitCode;
        }
        string plot = LossPlot.Save(o.Out, TrainingRun.ReadMetrics(o.Out), unigram);
        string best = run.BestCheckpoint() is { } b ? $"; best {IO.Checkpoint.StepFolderName(b.Step)} (validation {b.Loss:F4})" : "";
        string skipped = run.Trainer.SkippedSteps > 0 ? $"; {run.Trainer.SkippedSteps} steps skipped (non-finite)" : "";
        stdout.WriteLine($"validation loss {shown.Validation:F4} nats/token (unigram baseline {unigram:F3}); checkpoint {shown.Checkpoint}{best}{skipped}; loss curve {plot}");
        return 0;
    }

    /// <summary>What the display saw: the last validation loss (NaN before the first) and the last checkpoint.</summary>
    internal sealed record Outcome(double Validation, string? Checkpoint, int CheckpointStep);

    /// <summary>
    /// Runs <paramref name="loop"/> (<see cref="TrainingRun.Run"/>, or a test's sequence of events) and shows its
    /// events: as a progress line on <paramref name="console"/>, or as plain lines on <paramref name="stdout"/> when
    /// it is null. <paramref name="firstStep"/> is where a resumed run starts.
    /// </summary>
    internal static Outcome Show(Action<Action<TrainingEvent>, CancellationToken> loop, int firstStep, int totalSteps,
        TextWriter stdout, IAnsiConsole? console, CancellationToken stop)
    {
        var status = new Status(firstStep, totalSteps, int.MaxValue);
        if (console is null)
        {
            loop(e =>
            {
                status.Apply(e);
                if (e is StepEvent { Result: { Skipped: true } r })
                    stdout.WriteLine($"step {r.Step}: skipped, no update (loss {r.Loss}, gradient norm {r.GradientNorm})");
                else if (e is StepEvent { Result.Step: var s } && (s == firstStep + 1 || s % 50 == 0 || s == totalSteps))
                    stdout.WriteLine(status.Line(Status.Widest));
                else if (e is ValidationEvent v)
                    stdout.WriteLine($"step {v.Step}: validation loss {v.Loss:F4}");
            }, stop);
            return status.Outcome;
        }

        int layout = Status.LayoutFor(console.Profile.Width, totalSteps);
        status = new Status(firstStep, totalSteps, console.Profile.Width - OtherColumns);
        console.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = MaxBarWidth },
                     new PercentageColumn(), new ElapsedColumn(), new LeftColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(status.Line(layout)), maxValue: totalSteps);
                task.Value = firstStep;
                loop(e =>
                {
                    status.Apply(e);
                    // a validation event changes the line too: the last one arrives after the last step
                    task.Description = Markup.Escape(status.Line(layout));
                    task.Value = status.Step;
                }, stop);
            });
        return status.Outcome;
    }

    /// <summary>The bar never grows past this (on a wide terminal it would only stretch); Spectre shrinks it to fit.</summary>
    internal const int MaxBarWidth = 30;

    /// <summary>Columns beside the description: a bar of at least 10, "100%", "elapsed 0:00:00", "left 0:00:00", and
    /// the single spaces between the five columns.</summary>
    private const int OtherColumns = 10 + 4 + 15 + 12 + 4;

    /// <summary>The run as the events have told it so far, and its description in the longest layout that fits.</summary>
    private sealed class Status(int step, int totalSteps, int room)
    {
        public int Step { get; private set; } = step;
        StepResult? last;
        int skipped;
        double validation = double.NaN;
        string? checkpoint;
        int checkpointStep = -1;

        public Outcome Outcome => new(validation, checkpoint, checkpointStep);

        public void Apply(TrainingEvent e)
        {
            switch (e)
            {
                case StepEvent s: last = s.Result; Step = s.Result.Step; skipped = s.SkippedSteps; break;
                case ValidationEvent v: validation = v.Loss; break;
                case CheckpointEvent c: checkpoint = c.Folder; checkpointStep = c.Step; break;
            }
        }

        /// <summary>Layouts from the widest (0) to the narrowest, as format strings of step, total, loss, validation,
        /// learning rate and tokens/s; a narrow terminal drops the learning rate, then the throughput, then digits.</summary>
        static readonly string[] Layouts =
        [
            "step {0}/{1}  loss {2:F4}  val {3}  lr {4:E2}  {5:N0} tok/s",
            "step {0}/{1}  loss {2:F4}  val {3}  {5:N0} tok/s",
            "step {0}/{1} loss {2:F4} val {3}",
            "{0}/{1} loss {2:F3} val {3}",
        ];

        public const int Widest = 0;

        /// <summary>The widest layout whose longest line (the last step, two-digit losses, six-digit throughput)
        /// leaves the other columns their room in <paramref name="width"/> columns; chosen once, so the line does
        /// not change shape as the numbers grow.</summary>
        public static int LayoutFor(int width, int totalSteps)
        {
            for (int i = 0; i < Layouts.Length; i++)
                if (Format(i, totalSteps, totalSteps, 10.0, "10.0000", 1e-3f, 999_999).Length <= width - OtherColumns) return i;
            return Layouts.Length - 1;
        }

        public string Line(int layout)
        {
            int digits = layout == Layouts.Length - 1 ? 3 : 4;
            string val = double.IsNaN(validation) ? "—" : validation.ToString("F" + digits, CultureInfo.InvariantCulture);
            if (last is not { } r) return layout == Layouts.Length - 1 ? $"{Step}/{totalSteps}" : $"step {Step}/{totalSteps}";
            double tokensPerSecond = r.Tokens / Math.Max(1e-9, r.Elapsed.TotalSeconds);
            // Skipped steps (non-finite loss or gradient) are rare and must be seen: said at the end, in a narrower
            // layout when the line would not fit otherwise.
            string skip = skipped == 0 ? "" : $" skipped {skipped}";
            // MoE: the load-balancing (and z-) losses and the share of routed slots dropped at an expert's capacity
            if (r.DroppedFraction is { } dropped)
                skip = string.Format(CultureInfo.InvariantCulture, "  aux {0:F4}  dropped {1:P1}", r.AuxiliaryLoss, dropped) + skip;
            else if (r.AuxiliaryLoss != 0)
                skip = string.Format(CultureInfo.InvariantCulture, "  aux {0:F4}", r.AuxiliaryLoss) + skip;
            for (int l = layout; ; l++)
            {
                string line = Format(l, r.Step, totalSteps, r.Loss, val, r.LearningRate, tokensPerSecond) + skip;
                if (line.Length <= room || l == Layouts.Length - 1) return line;
            }
        }

        static string Format(int layout, int step, int total, double loss, string val, float lr, double tokensPerSecond) =>
            string.Format(CultureInfo.InvariantCulture, Layouts[layout], step, total, loss, val, lr, tokensPerSecond);
    }

    /// <summary>"elapsed 0:01:23": Spectre's own time columns print bare times, which read alike.</summary>
    private sealed class ElapsedColumn : ProgressColumn
    {
        protected override bool NoWrap => true;
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Spectre.Console.Text($"elapsed {Clock(task.ElapsedTime)}");
    }

    /// <summary>"left 0:02:10", estimated by Spectre from the steps so far; "-:--:--" until it has an estimate.</summary>
    private sealed class LeftColumn : ProgressColumn
    {
        protected override bool NoWrap => true;
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Spectre.Console.Text($"left {Clock(task.IsFinished ? TimeSpan.Zero : task.RemainingTime)}");
    }

    private static string Clock(TimeSpan? t) => t is { } v ? $"{(int)v.TotalHours}:{v.Minutes:00}:{v.Seconds:00}" : "-:--:--";
}
