using System.CommandLine;
using Llm.Training;
using Spectre.Console;

namespace Llm.Tools;

/// <summary>`train`: the main job. Defaults train the tiny GPT-2 on the embedded Pride and Prejudice in a few minutes.</summary>
internal static class TrainCommand
{
    public static Command Create(TextWriter stdout)
    {
        var d = new TrainOptions();
        var preset = Cli.Opt("--preset", "model preset: tiny, micro or gpt2", d.Preset);
        var tokenizer = Cli.Opt("--tokenizer", "byte (vocab 256) or gpt2 (BPE, vocab 50257)", d.Tokenizer);
        var data = Cli.Opt<string?>("--data", "UTF-8 text file to train on (default: the embedded Pride and Prejudice)");
        var steps = Cli.Opt("--steps", "optimizer steps", d.Steps);
        var batch = Cli.Opt("--batch", "B sequences per micro-batch", d.Batch);
        var seq = Cli.Opt("--seq", "T tokens per sequence", d.Seq);
        var lr = Cli.Opt("--lr", "peak learning rate (warm-up, then cosine decay to 10 %)", d.Optimizer.LearningRate);
        var warmup = Cli.Opt("--warmup", "linear warm-up steps", d.Optimizer.WarmupSteps);
        var accumulate = Cli.Opt("--accumulate", "micro-batches per step (gradient accumulation)", d.Optimizer.AccumulationSteps);
        var clip = Cli.Opt("--grad-clip", "clip the global gradient norm at this value (0: off)", d.Optimizer.GradientClip);
        var decay = Cli.Opt("--weight-decay", "AdamW weight decay on matrices", d.Optimizer.WeightDecay);
        var evalEvery = Cli.Opt("--eval-every", "steps between validation passes", d.EvalEvery);
        var evalBatches = Cli.Opt("--eval-batches", "validation batches per pass", d.EvalBatches);
        var ckptEvery = Cli.Opt("--checkpoint-every", "steps between checkpoints", d.CheckpointEvery);
        var seed = Cli.Opt("--seed", "seed of the weight initialisation", d.Seed);
        var output = Cli.Opt("--out", "run folder for checkpoints, metrics.csv and loss.png", d.Out);
        var resume = new Option<string?>("--resume")
        {
            Description = "continue from a checkpoint (a step folder or a run folder); without a value, from --out",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var cmd = new Command("train", "Train a GPT-2 on a text corpus, with validation, checkpoints and a loss curve.")
        { preset, tokenizer, data, steps, batch, seq, lr, warmup, accumulate, clip, decay, evalEvery, evalBatches, ckptEvery, seed, output, resume };
        cmd.SetAction(p =>
        {
            using var backend = Cli.CreateBackend();
            TrainingRun run;
            if (p.GetResult(resume) is not null)
            {
                string from = p.GetValue(resume) ?? p.GetValue(output)!;
                int? newSteps = p.GetResult(steps) is { Implicit: false } ? p.GetValue(steps) : null;
                string? newOut = p.GetResult(output) is { Implicit: false } ? p.GetValue(output) : null;
                run = TrainingRun.Resume(backend, from, newOut, newSteps);
                stdout.WriteLine($"resuming {from} at step {run.Trainer.Optimizer.Step} of {run.Options.Steps}");
            }
            else
            {
                run = TrainingRun.Start(backend, new TrainOptions
                {
                    Preset = p.GetValue(preset)!, Tokenizer = p.GetValue(tokenizer)!, DataPath = p.GetValue(data),
                    Steps = p.GetValue(steps), Batch = p.GetValue(batch), Seq = p.GetValue(seq),
                    EvalEvery = p.GetValue(evalEvery), EvalBatches = p.GetValue(evalBatches), CheckpointEvery = p.GetValue(ckptEvery),
                    Seed = p.GetValue(seed), Out = p.GetValue(output)!,
                    Optimizer = new OptimizerOptions
                    {
                        LearningRate = p.GetValue(lr), WarmupSteps = p.GetValue(warmup), AccumulationSteps = p.GetValue(accumulate),
                        GradientClip = p.GetValue(clip), WeightDecay = p.GetValue(decay),
                    },
                });
            }
            Execute(run, backend.Name, stdout);
            return 0;
        });
        return cmd;
    }

    private static void Execute(TrainingRun run, string backendName, TextWriter stdout)
    {
        var o = run.Options;
        double unigram = run.Data.TrainUnigramEntropy;
        stdout.WriteLine($"GPT-2 '{o.Preset}' ({run.Model.Parameters.Count:N0} parameters) on {backendName}; tokenizer {run.Tokenizer.Name}; " +
                         $"{run.Data.TrainCount:N0} train / {run.Data.ValidationCount:N0} validation tokens; B={o.Batch} T={o.Seq}; unigram baseline {unigram:F3} nats/token");
        double lastVal = double.NaN;
        string? lastCheckpoint = null;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stdout) });
        bool interactive = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected;

        void OnEvent(TrainingEvent e, ProgressTask? task)
        {
            switch (e)
            {
                case StepEvent { Result: var r } se:
                    double tps = r.Tokens / Math.Max(1e-9, r.Elapsed.TotalSeconds);
                    string val = double.IsNaN(lastVal) ? "—" : lastVal.ToString("F4");
                    string line = $"step {r.Step}/{se.TotalSteps}  loss {r.Loss:F4}  val {val}  lr {r.LearningRate:E2}  {tps:N0} tok/s";
                    if (task is not null) { task.Description = Markup.Escape(line); task.Value = r.Step; }
                    else if (r.Step == 1 || r.Step % 50 == 0 || r.Step == se.TotalSteps) stdout.WriteLine(line);
                    break;
                case ValidationEvent v:
                    lastVal = v.Loss;
                    if (task is null) stdout.WriteLine($"step {v.Step}: validation loss {v.Loss:F4}");
                    break;
                case CheckpointEvent c:
                    lastCheckpoint = c.Folder;
                    break;
            }
        }

        if (interactive)
        {
            console.Progress()
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new ElapsedTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("training", maxValue: o.Steps);
                    task.Value = run.Trainer.Optimizer.Step;
                    run.Run(e => OnEvent(e, task));
                });
        }
        else run.Run(e => OnEvent(e, null));

        string plot = LossPlot.Save(o.Out, TrainingRun.ReadMetrics(o.Out), unigram);
        stdout.WriteLine($"validation loss {lastVal:F4} nats/token (unigram baseline {unigram:F3}); checkpoint {lastCheckpoint}; loss curve {plot}");
    }
}
