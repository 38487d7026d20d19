using System.CommandLine;
using Llm.Tensors;
using Llm.Training;

namespace Llm.Tools;

/// <summary>`train`: the main job. Defaults train the tiny GPT-2 on the embedded Pride and Prejudice in a few minutes.</summary>
internal static class TrainCommand
{
    /// <param name="stderr">Warnings about the input, such as bytes of --data that are not UTF-8.</param>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var d = new TrainOptions();
        var preset = Cli.Opt("--preset", "model preset: tiny, micro, gpt2, a family's *-tiny (llama-tiny, glm-tiny, switch-tiny, …) or an encoder-decoder (t5-tiny, switch-t5-tiny, …)", d.Preset);
        var configFile = Cli.Opt<string?>("--config", "a Hugging Face config.json (llama, mistral, bloom, gpt_neox, gpt2; t5, which trains with --objective span) to train instead of a preset; its vocab_size gives way to the tokenizer's (+ the span objective's sentinels)");
        var tokenizer = Cli.Opt("--tokenizer", "byte (vocab 256) or gpt2 (BPE, vocab 50257)", d.Tokenizer);
        var data = Cli.Opt<string?>("--data", "UTF-8 text file to train on (default: the embedded Pride and Prejudice)");
        var steps = Cli.Opt("--steps", "optimizer steps", d.Steps);
        var batch = Cli.Opt("--batch", "B sequences per micro-batch", d.Batch);
        var seq = Cli.Opt<int?>("--seq", $"T tokens per sequence (default: {TrainOptions.DefaultSeq}, or the preset's context length when shorter)");
        var lr = Cli.Opt("--lr", "peak learning rate (warm-up, then cosine decay to 10 %)", d.Optimizer.LearningRate);
        var warmup = Cli.Opt("--warmup", "linear warm-up steps", d.Optimizer.WarmupSteps);
        var accumulate = Cli.Opt("--accumulate", "micro-batches per step (gradient accumulation)", d.Optimizer.AccumulationSteps);
        var clip = Cli.Opt("--grad-clip", "clip the global gradient norm at this value (0: off)", d.Optimizer.GradientClip);
        var decay = Cli.Opt("--weight-decay", "AdamW weight decay on matrices", d.Optimizer.WeightDecay);
        var evalEvery = Cli.Opt("--eval-every", "steps between validation passes (every checkpoint is validated too)", d.EvalEvery);
        var evalBatches = Cli.Opt("--eval-batches", "validation batches per pass", d.EvalBatches);
        var ckptEvery = Cli.Opt("--checkpoint-every", "steps between checkpoints", d.CheckpointEvery);
        var keepLast = Cli.Opt("--keep-last", "checkpoints kept besides the best by validation loss (0: keep all)", d.KeepLast);
        var maxSkipped = Cli.Opt("--max-skipped", "stop after this many steps in a row with a non-finite loss or gradient (each is skipped)", d.MaxConsecutiveSkips);
        var objective = Cli.Opt("--objective", "pretraining objective: causal (next token), prefix (prefix LM: a bidirectional prefix, loss on the rest) " +
            "or span (T5 span corruption: 15 % noise in spans of mean 3, sentinels above the vocabulary; on a decoder, GLM's blank infilling); " +
            "encoder-decoder presets default to span", d.Objective)
            .Must(v => Llm.Training.Objectives.Objective.Names.Contains(v), string.Join(", ", Llm.Training.Objectives.Objective.Names.SkipLast(1)) + " or " + Llm.Training.Objectives.Objective.Names[^1]);
        var seed = Cli.Opt("--seed", "seed of the weight initialisation and the data order", d.Seed);
        var output = Cli.Opt<string?>("--out", "run folder for checkpoints, metrics.csv and loss.png (default: runs/PRESET)");
        var overwrite = Cli.Opt("--overwrite", "replace the run that --out already holds (its checkpoints, metrics and plot are deleted)", false);
        var resume = new Option<string?>("--resume")
        {
            Description = "continue the run in this folder (or the run of this step folder); without a value, the --out folder",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var cmd = new Command("train", "Train a language model (GPT-2 by default) on a text corpus, with validation, checkpoints and a loss curve.")
        { preset, configFile, tokenizer, data, steps, batch, seq, lr, warmup, accumulate, clip, decay, evalEvery, evalBatches, ckptEvery, keepLast, maxSkipped, objective, seed, output, overwrite, resume };
        cmd.SetAction(p =>
        {
            // Given: typed on the command line, not a default (a resumed run refuses the ones that contradict it).
            T? Given<T>(Option<T> o) where T : struct => p.GetResult(o) is { Implicit: false } ? p.GetValue(o) : null;
            string? GivenText(Option<string> o) => p.GetResult(o) is { Implicit: false } ? p.GetValue(o) : null;
            string? configPath = p.GetValue(configFile);
            if (configPath is not null && GivenText(preset) is not null)
                throw new ArgumentException("--config and --preset exclude each other: both say which model to train");
            if (configPath is not null && p.GetResult(resume) is not null)
                throw new ArgumentException("--config starts a run: a resumed run's model is its checkpoint's config.json");
            var defaults = configPath is null ? TrainOptions.ForPreset(p.GetValue(preset)!)  // also refuses an unknown preset
                : TrainOptions.ForConfig(configPath);                                          // and a config.json it cannot honour
            void Warn(string message) => stderr.WriteLine($"warning: {message}");
            TrainingRun run;
            IBackend backend;
            if (p.GetResult(resume) is not null)
            {
                if (p.GetValue(overwrite)) throw new ArgumentException("--overwrite and --resume exclude each other: one replaces the run, the other continues it");
                string from = p.GetValue(resume) ?? p.GetValue(output) ?? defaults.Out;
                var given = new ResumeOptions
                {
                    Preset = GivenText(preset), Tokenizer = GivenText(tokenizer), DataPath = p.GetValue(data),
                    Batch = Given(batch), Seq = p.GetValue(seq), LearningRate = Given(lr), WarmupSteps = Given(warmup),
                    AccumulationSteps = Given(accumulate), GradientClip = Given(clip), WeightDecay = Given(decay), Seed = Given(seed),
                    Objective = GivenText(objective), Out = p.GetValue(output), Steps = Given(steps), EvalEvery = Given(evalEvery), EvalBatches = Given(evalBatches),
                    CheckpointEvery = Given(ckptEvery), KeepLast = Given(keepLast), MaxConsecutiveSkips = Given(maxSkipped),
                };
                IO.Checkpoint.ResolveModelFolder(from);  // a missing run fails before a device opens
                backend = Cli.CreateBackend(p, stdout);
                var changes = new List<string>();
                run = TrainingRun.Resume(backend, from, given, changes.Add, Warn);
                stdout.WriteLine($"resuming {run.Options.Out} at step {run.Trainer.CompletedSteps} of {run.Options.Steps}" +
                                 (changes.Count > 0 ? $"; changed: {string.Join(", ", changes)}" : ""));
                if (run.IsComplete)
                {
                    stdout.WriteLine($"the run has already taken {run.Trainer.CompletedSteps} steps (--steps {run.Options.Steps}): nothing to do; give a larger --steps to train further");
                    backend.Dispose();
                    return 0;
                }
            }
            else
            {
                var options = defaults with
                {
                    Tokenizer = p.GetValue(tokenizer)!, DataPath = p.GetValue(data),
                    Steps = p.GetValue(steps), Batch = p.GetValue(batch), Seq = p.GetValue(seq) ?? defaults.Seq,
                    EvalEvery = p.GetValue(evalEvery), EvalBatches = p.GetValue(evalBatches), CheckpointEvery = p.GetValue(ckptEvery),
                    KeepLast = p.GetValue(keepLast), MaxConsecutiveSkips = p.GetValue(maxSkipped),
                    Seed = p.GetValue(seed), Out = p.GetValue(output) ?? defaults.Out, Objective = GivenText(objective) ?? defaults.Objective,
                    Optimizer = new OptimizerOptions
                    {
                        LearningRate = p.GetValue(lr), WarmupSteps = p.GetValue(warmup), AccumulationSteps = p.GetValue(accumulate),
                        GradientClip = p.GetValue(clip), WeightDecay = p.GetValue(decay),
                    },
                };
                options.Validate();  // every bad value is named before a device opens
                backend = Cli.CreateBackend(p, stdout);
                run = TrainingRun.Start(backend, options, p.GetValue(overwrite), Warn);
            }
            using (backend) return TrainProgress.Run(run, backend.Name, stdout);
        });
        return cmd;
    }
}
