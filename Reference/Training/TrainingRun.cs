using Decoder = Llm.Models.Decoder;
using Llm.Training.Objectives;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;

namespace Llm.Training;

/// <summary>Everything `train` needs; defaults make a CPU demo of a few minutes on 2 cores.</summary>
public sealed record TrainOptions
{
    public string Preset { get; init; } = "tiny";          // model size; see DecoderConfig presets
    public string? ConfigPath { get; init; }                // a Hugging Face config.json instead of the preset; the vocabulary follows the tokenizer
    public string Tokenizer { get; init; } = "byte";       // byte (vocab 256) suits tiny models; gpt2 = BPE, 50257
    public string? DataPath { get; init; }                  // null: the embedded Pride and Prejudice
    public int Steps { get; init; } = 3000;                // training steps: ~4 min for tiny on 2 cores, val ≈ 1.34 nats
    public int Batch { get; init; } = 16;                  // B sequences per micro-batch
    public int Seq { get; init; } = DefaultSeq;            // T tokens per sequence (≤ the preset's context)
    public double ValidationFraction { get; init; } = 0.1; // the held-out tail of the text
    public int EvalEvery { get; init; } = 250;             // steps between validation passes (and at every checkpoint)
    public int EvalBatches { get; init; } = 20;            // validation batches per pass
    public int CheckpointEvery { get; init; } = 1000;      // steps between checkpoints (and at the end)
    public int KeepLast { get; init; } = 3;                // step folders kept besides the best one; 0 keeps all
    public int MaxConsecutiveSkips { get; init; } = 10;    // non-finite steps in a row that stop the run
    public ulong Seed { get; init; } = 1337;               // weight initialisation and data order
    public string Out { get; init; } = "runs/tiny";        // run folder: step_NNNNNN checkpoints, metrics.csv
    public OptimizerOptions Optimizer { get; init; } = new();
    public string Objective { get; init; } = Objectives.Objective.Default; // causal, prefix or span (see Training/Objectives)

    /// <summary>T when not given: 64, or the preset's context when that is shorter (micro's is 16).</summary>
    public const int DefaultSeq = 64;

    /// <summary>The defaults that fit a preset: its sequence length and a run folder of its own name.</summary>
    public static TrainOptions ForPreset(string preset)
    {
        bool encoderDecoder = EncoderDecoderConfig.IsPreset(preset);   // trains with span corruption, T5's objective
        int context = encoderDecoder ? EncoderDecoderConfig.FromPreset(preset).ContextLength : DecoderConfig.FromPreset(preset).ContextLength;
        return new TrainOptions
        {
            Preset = preset, Seq = Math.Min(DefaultSeq, context), Out = Path.Combine("runs", preset.ToLowerInvariant()),
            Objective = encoderDecoder ? "span" : Objectives.Objective.Default,
        };
    }

    /// <summary>The preset is an encoder-decoder (t5-*): it trains with the span objective.</summary>
    public bool IsEncoderDecoder => ConfigPath is null ? EncoderDecoderConfig.IsPreset(Preset) : LanguageModels.IsEncoderDecoderConfig(ConfigPath);

    /// <summary>The defaults that fit a config.json (a decoder family's, or T5's: then the span objective): its sequence
    /// length, a run folder named after its folder.</summary>
    public static TrainOptions ForConfig(string path)
    {
        bool t5 = LanguageModels.IsEncoderDecoderConfig(path);
        int context = t5 ? T5HfConfig.Load(path).Model.ContextLength : HfConfig.Load(path).Model.ContextLength;
        string full = Path.GetFullPath(path), name = Path.GetFileName(Path.GetDirectoryName(full)) is { Length: > 0 } folder ? folder : Path.GetFileNameWithoutExtension(full);
        return new TrainOptions
        {
            ConfigPath = full, Seq = Math.Min(DefaultSeq, context), Out = Path.Combine("runs", name.ToLowerInvariant()),
            Objective = t5 ? "span" : Objectives.Objective.Default,
        };
    }

    /// <summary>The decoder to train: the config.json's when given, else the preset's.</summary>
    public DecoderConfig ModelConfig() => ConfigPath is null ? DecoderConfig.FromPreset(Preset) : HfConfig.Load(ConfigPath).Model;

    /// <summary>The encoder-decoder to train: T5's config.json when given, else the preset's.</summary>
    public EncoderDecoderConfig EncoderDecoderModelConfig() => ConfigPath is null ? EncoderDecoderConfig.FromPreset(Preset) : T5HfConfig.Load(ConfigPath).Model;

    /// <summary>What the model is, as messages name it.</summary>
    public string ModelName => ConfigPath is null ? $"preset '{Preset}'" : ConfigPath;

    /// <summary>Throws naming the option (as the CLI spells it) whose value cannot train.</summary>
    public TrainOptions Validate()
    {
        static void Require(bool ok, string message) { if (!ok) throw new ArgumentException(message); }
        static bool FiniteAtLeast(float x, float min) => x >= min && float.IsFinite(x);
        var o = Optimizer;
        Require(Steps >= 1, $"--steps must be ≥ 1, got {Steps}");
        Require(Batch >= 1, $"--batch must be ≥ 1, got {Batch}");
        Require(Seq >= 1, $"--seq must be ≥ 1, got {Seq}");
        Require(EvalEvery >= 1, $"--eval-every must be ≥ 1, got {EvalEvery}");
        Require(EvalBatches >= 1, $"--eval-batches must be ≥ 1, got {EvalBatches}");
        Require(CheckpointEvery >= 1, $"--checkpoint-every must be ≥ 1, got {CheckpointEvery}");
        Require(KeepLast >= 0, $"--keep-last must be ≥ 0 (0 keeps every checkpoint), got {KeepLast}");
        Require(MaxConsecutiveSkips >= 1, $"--max-skipped must be ≥ 1, got {MaxConsecutiveSkips}");
        Require(ValidationFraction is > 0 and < 1, $"the validation fraction must lie in (0, 1), got {ValidationFraction}");
        Require(o.LearningRate > 0 && float.IsFinite(o.LearningRate), $"--lr must be a positive number, got {Show(o.LearningRate)}");
        Require(o.WarmupSteps >= 0, $"--warmup must be ≥ 0, got {o.WarmupSteps}");
        Require(o.AccumulationSteps >= 1, $"--accumulate must be ≥ 1, got {o.AccumulationSteps}");
        Require(FiniteAtLeast(o.GradientClip, 0), $"--grad-clip must be a number ≥ 0 (0 turns clipping off), got {Show(o.GradientClip)}");
        Require(FiniteAtLeast(o.WeightDecay, 0), $"--weight-decay must be a number ≥ 0, got {Show(o.WeightDecay)}");
        Require(Objectives.Objective.Names.Contains(Objective), $"--objective must be one of {string.Join(", ", Objectives.Objective.Names)}, got {Objective}");
        Require(!IsEncoderDecoder || Objective == "span", $"--objective {Objective} needs a decoder; the encoder-decoder {ModelName} trains with --objective span");
        Require(o.MinLearningRateFraction is >= 0 and <= 1, $"the learning-rate floor must lie in [0, 1] of the peak, got {o.MinLearningRateFraction}");
        return this;
    }

    private static string Show(float x) => x.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Options given again on `train --resume`: null where not given. The run's shape (model, data, batch,
/// optimizer) is fixed by its checkpoint and a different value is refused; its length and bookkeeping may change.</summary>
public sealed record ResumeOptions
{
    public string? Preset { get; init; }
    public string? Tokenizer { get; init; }
    public string? DataPath { get; init; }
    public int? Batch { get; init; }
    public int? Seq { get; init; }
    public float? LearningRate { get; init; }
    public int? WarmupSteps { get; init; }
    public int? AccumulationSteps { get; init; }
    public float? GradientClip { get; init; }
    public float? WeightDecay { get; init; }
    public ulong? Seed { get; init; }
    public string? Objective { get; init; }
    public string? Out { get; init; }
    // may change on resume
    public int? Steps { get; init; }
    public int? EvalEvery { get; init; }
    public int? EvalBatches { get; init; }
    public int? CheckpointEvery { get; init; }
    public int? KeepLast { get; init; }
    public int? MaxConsecutiveSkips { get; init; }
}

/// <summary>What the loop tells its caller (the CLI draws a progress bar from it).</summary>
public abstract record TrainingEvent;
/// <param name="SkippedSteps">Steps skipped so far in the run (non-finite loss or gradient norm).</param>
public sealed record StepEvent(StepResult Result, int TotalSteps, int SkippedSteps = 0) : TrainingEvent;
public sealed record ValidationEvent(int Step, double Loss) : TrainingEvent;
public sealed record CheckpointEvent(int Step, string Folder) : TrainingEvent;

/// <summary>
/// A whole training run: tokenize the corpus, build or resume the model, then for each step take a batch, update,
/// validate and checkpoint on schedule, keeping the last few checkpoints and the best one. Resuming restores weights,
/// AdamW moments, the counters and the data loader's order and position, so the continued run reproduces the
/// uninterrupted one bit for bit (on the CPU, and on a Vulkan device with itself).
/// </summary>
public sealed class TrainingRun
{
    public TrainOptions Options { get; }
    public ITokenizer Tokenizer { get; }
    public TokenDataset Data { get; }
    /// <summary>Turns the dataset's raw rows into the model's batches (the training objective).</summary>
    public Objective Objective { get; }
    public ILanguageModel Model { get; }
    public Trainer Trainer { get; }
    /// <summary>SHA-256 of the training text (lower-case hex), saved with every checkpoint.</summary>
    public string DataSha256 { get; }
    /// <summary>(step, train loss, validation loss or NaN, ...) for every step of this run folder, resumed steps included.</summary>
    public List<MetricsRow> Metrics { get; } = [];

    public const string MetricsFile = RunFolder.MetricsFile;

    private TrainingRun(TrainOptions options, ITokenizer tokenizer, Objective objective, TokenDataset data, string sha, ILanguageModel model, Trainer trainer)
    {
        Options = options; Tokenizer = tokenizer; Objective = objective; Data = data; DataSha256 = sha; Model = model; Trainer = trainer;
    }

    /// <summary>The objective for <paramref name="options"/>' T and model kind.</summary>
    private static Objective ObjectiveOf(TrainOptions options, ITokenizer tokenizer) =>
        Objectives.Objective.Create(options.Objective, options.Seq, options.IsEncoderDecoder, tokenizer);

    /// <summary>What the model sees: row 0 of the next training batch through the objective (the loader does not move).</summary>
    public string Sample()
    {
        long position = Data.Position;
        ulong order = Data.OrderState;
        var raw = Data.NextTrainBatch();
        Data.Restore(position, order);
        return Objective.Describe(Objective.Apply(raw, Options.Seed, TrainDraw(0)), Tokenizer);
    }

    /// <summary>The objective's draw of micro-batch <paramref name="micro"/> of the next step (as the dropout streams count).</summary>
    private long TrainDraw(int micro) => (long)Trainer.CompletedSteps * Options.Optimizer.AccumulationSteps + micro;

    /// <summary>The run has taken all of its steps (a resumed run may already have).</summary>
    public bool IsComplete => Trainer.CompletedSteps >= Options.Steps;

    /// <summary>A fresh run: weights initialised from the seed, in <see cref="TrainOptions.Out"/>, which must not hold
    /// another run unless <paramref name="overwrite"/> is set (then that run's files are deleted first).</summary>
    /// <param name="warn">Receives warnings about the input (text that was not valid UTF-8).</param>
    public static TrainingRun Start(IBackend backend, TrainOptions options, bool overwrite = false, Action<string>? warn = null)
    {
        options = options.Validate() with { DataPath = options.DataPath is null ? null : Path.GetFullPath(options.DataPath) };
        var tokenizer = Tokenizers.Create(options.Tokenizer);
        var objective = ObjectiveOf(options, tokenizer);
        int vocab = tokenizer.VocabSize + objective.Sentinels;   // sentinels sit above the tokenizer's ids
        DecoderConfig? config = null;
        EncoderDecoderConfig? t5 = null;
        int context;
        if (options.IsEncoderDecoder)
        {
            t5 = options.EncoderDecoderModelConfig() with { VocabSize = vocab };
            context = t5.ContextLength;
        }
        else
        {
            config = options.ModelConfig() with { VocabSize = vocab };
            if (objective.NeedsPrefixVisibility) config = config with { Visibility = Visibility.Prefix };
            context = config.ContextLength;
        }
        if (options.Seq > context)
            throw new ArgumentException($"--seq {options.Seq} exceeds the context length {context} of {options.ModelName}");
        var (data, sha) = LoadData(options, objective, tokenizer, warn);

        var existing = RunEntries(options.Out);
        if (existing.Count > 0 && !overwrite)
            throw new ArgumentException($"--out {options.Out} already holds a run ({string.Join(", ", existing.Take(4))}{(existing.Count > 4 ? ", …" : "")}): " +
                                        "continue it with --resume, choose another --out, or give --overwrite to replace it");
        RunFolder.EnsureWritable(options.Out);
        if (existing.Count > 0) RunFolder.Clear(options.Out);

        ILanguageModel model = t5 is not null ? new EncoderDecoder(backend, t5) : new Decoder(backend, config!);
        model.InitializeWeights(options.Seed);
        return new TrainingRun(options, tokenizer, objective, data, sha, model, new Trainer(model, options.Optimizer, options.Steps) { DropoutSeed = (ulong)options.Seed });
    }

    private static List<string> RunEntries(string folder) =>
        File.Exists(folder) ? throw new IOException($"--out {folder} is a file, not a folder") : RunFolder.RunEntries(folder);

    /// <summary>Continues the run that <paramref name="checkpoint"/> (a run folder, or one of its step folders)
    /// belongs to, in that run folder. The saved options are used; <paramref name="given"/> may change the run's
    /// length and bookkeeping (each change is reported to <paramref name="say"/>) but not its shape.</summary>
    public static TrainingRun Resume(IBackend backend, string checkpoint, ResumeOptions? given = null, Action<string>? say = null, Action<string>? warn = null)
    {
        given ??= new ResumeOptions();
        string folder = Checkpoint.ResolveModelFolder(checkpoint);
        string statePath = Path.Combine(folder, Checkpoint.TrainingStateFile);
        if (!File.Exists(statePath))
            throw new FileNotFoundException($"{folder} has no {Checkpoint.TrainingStateFile}: it holds weights only and cannot be resumed");
        string runFolder = RunFolder.OfCheckpoint(folder);
        var state = TrainingState.Read(statePath);
        TrainOptions saved;
        try
        {
            saved = JsonSerializer.Deserialize<TrainOptions>(state.TrainerJson, JsonOptions)
                ?? throw new InvalidDataException($"{statePath}: no trainer options");
        }
        catch (JsonException e) { throw new InvalidDataException($"{statePath}: the trainer options are not valid JSON ({e.Message})", e); }

        var options = Reconcile(saved, given, runFolder, say).Validate();
        var (model, tokenizerName) = LanguageModels.Load(folder, backend);
        if (tokenizerName != options.Tokenizer)
            throw new InvalidDataException($"{folder}: config.json names tokenizer '{tokenizerName}' but the training state says '{options.Tokenizer}'");
        var tokenizer = Tokenizers.Create(options.Tokenizer);
        var objective = ObjectiveOf(options, tokenizer);
        if (model.VocabSize != tokenizer.VocabSize + objective.Sentinels)
            throw new InvalidDataException($"{folder}: the model's vocabulary is {model.VocabSize}, but tokenizer {tokenizer.Name} ({tokenizer.VocabSize}) with objective {objective.Name} ({objective.Sentinels} sentinels) needs {tokenizer.VocabSize + objective.Sentinels}");
        if (objective.NeedsPrefixVisibility && model is Decoder { Config.Visibility: not Visibility.Prefix })
            throw new InvalidDataException($"{folder}: objective {objective.Name} needs a prefix decoder, but config.json's visibility is not Prefix");
        var (data, sha) = LoadData(options, objective, tokenizer, warn);
        if (state.DataSha256 is { } expected && expected != sha)
            throw new InvalidDataException($"{options.DataPath ?? "the embedded corpus"} changed since {folder} was written (SHA-256 {sha[..12]}…, the checkpoint's is {expected[..Math.Min(12, expected.Length)]}…): resuming on other text would not continue the same run");

        var trainer = new Trainer(model, options.Optimizer, options.Steps) { DropoutSeed = (ulong)options.Seed };
        LoadMoments(statePath, trainer.Optimizer);
        trainer.Optimizer.Step = checked((int)state.OptimizerStep);
        trainer.CompletedSteps = checked((int)state.Step);
        trainer.SkippedSteps = checked((int)state.SkippedSteps);
        data.Restore(state.DataPosition, state.DataOrderState);
        var run = new TrainingRun(options, tokenizer, objective, data, sha, model, trainer);
        run.Metrics.AddRange(ReadMetrics(runFolder).Where(m => m.Step <= state.Step));  // later rows are redone
        return run;
    }

    /// <summary>The saved options with the given ones applied: those that shape the run must agree with the
    /// checkpoint, the rest replace it and are said.</summary>
    private static TrainOptions Reconcile(TrainOptions saved, ResumeOptions given, string runFolder, Action<string>? say)
    {
        var inv = CultureInfo.InvariantCulture;
        void Fixed<T>(string option, T? value, T savedValue) where T : struct, IFormattable =>
            FixedText(option, value?.ToString(null, inv), savedValue.ToString(null, inv), value is null || value.Value.Equals(savedValue));
        void FixedText(string option, string? value, string? savedValue, bool same)
        {
            if (!same)
                throw new ArgumentException($"{option} {value} contradicts the checkpoint, which was trained with {option} {savedValue ?? "(none)"}; " +
                                            "a resumed run keeps it (start a new run in another --out to change it)");
        }
        var o = saved.Optimizer;
        FixedText("--preset", given.Preset, saved.Preset, given.Preset is null || string.Equals(given.Preset, saved.Preset, StringComparison.OrdinalIgnoreCase));
        FixedText("--tokenizer", given.Tokenizer, saved.Tokenizer, given.Tokenizer is null || given.Tokenizer == saved.Tokenizer);
        FixedText("--data", given.DataPath, saved.DataPath ?? "(the embedded corpus)", given.DataPath is null || saved.DataPath is not null && Path.GetFullPath(given.DataPath) == saved.DataPath);
        Fixed("--batch", given.Batch, saved.Batch);
        Fixed("--seq", given.Seq, saved.Seq);
        Fixed("--lr", given.LearningRate, o.LearningRate);
        Fixed("--warmup", given.WarmupSteps, o.WarmupSteps);
        Fixed("--accumulate", given.AccumulationSteps, o.AccumulationSteps);
        Fixed("--grad-clip", given.GradientClip, o.GradientClip);
        Fixed("--weight-decay", given.WeightDecay, o.WeightDecay);
        Fixed("--seed", given.Seed, saved.Seed);
        FixedText("--objective", given.Objective, saved.Objective, given.Objective is null || given.Objective == saved.Objective);
        if (given.Out is { } outFolder && Path.GetFullPath(outFolder).TrimEnd(Path.DirectorySeparatorChar) != runFolder)
            throw new ArgumentException($"--out {outFolder} is not the run being resumed ({runFolder}); a resumed run continues in its own folder");

        int Changed(string option, int? value, int savedValue)
        {
            if (value is { } v && v != savedValue) say?.Invoke($"{option} {v} (the run had {savedValue})");
            return value ?? savedValue;
        }
        return saved with
        {
            Out = runFolder,
            Steps = Changed("--steps", given.Steps, saved.Steps),
            EvalEvery = Changed("--eval-every", given.EvalEvery, saved.EvalEvery),
            EvalBatches = Changed("--eval-batches", given.EvalBatches, saved.EvalBatches),
            CheckpointEvery = Changed("--checkpoint-every", given.CheckpointEvery, saved.CheckpointEvery),
            KeepLast = Changed("--keep-last", given.KeepLast, saved.KeepLast),
            MaxConsecutiveSkips = Changed("--max-skipped", given.MaxConsecutiveSkips, saved.MaxConsecutiveSkips),
        };
    }

    /// <summary>AdamW's moments: one tensor per parameter; checkpoints from before that layout hold one flat
    /// "adam.m" / "adam.v" [P] in the declaration order of the parameters.</summary>
    private static void LoadMoments(string statePath, AdamW adam)
    {
        var names = TrainingState.TensorNames(statePath);
        if (adam.M.Count == 1 && names.Contains("adam.m") && !names.Contains(adam.MOf(adam.Parameters.Trainable[0]).Name!))
        {
            var backend = adam.Parameters.Backend;
            int count = adam.Parameters.Arenas[0].Values.Length;   // [P]: the old flat moments covered every parameter
            Tensor m = backend.Allocate(adam.Parameters.DType, [count], "adam.m"), v = backend.Allocate(adam.Parameters.DType, [count], "adam.v");
            TrainingState.ReadTensors(statePath, [m, v]);
            adam.LoadDeclarationOrder(m, v);
            backend.Release(m);
            backend.Release(v);
            return;
        }
        TrainingState.ReadTensors(statePath, [.. adam.Parameters.Trainable.Select(adam.MOf), .. adam.Parameters.Trainable.Select(adam.VOf)]);
    }

    /// <summary>The text as a dataset of the objective's raw rows (R − 1 inputs and the token after them; causal: T).</summary>
    private static (TokenDataset Data, string Sha256) LoadData(TrainOptions options, Objective objective, ITokenizer tokenizer, Action<string>? warn)
    {
        string text = Corpus.Load(options.DataPath, warn);
        string sha = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
        var data = new TokenDataset(tokenizer.Encode(text), options.Batch, objective.RawLength - 1, options.ValidationFraction, shuffleSeed: options.Seed);
        return (data, sha);
    }

    /// <summary>Runs the remaining steps, reporting each event to <paramref name="onEvent"/>. Throws
    /// <see cref="TrainingDivergedException"/> (after writing the metrics) when the loss cannot be trusted any more.</summary>
    public void Run(Action<TrainingEvent>? onEvent = null, CancellationToken cancel = default)
    {
        var o = Options;
        Directory.CreateDirectory(o.Out);
        while (!IsComplete && !cancel.IsCancellationRequested)
        {
            var micro = new List<TokenBatch>(o.Optimizer.AccumulationSteps);
            for (int i = 0; i < o.Optimizer.AccumulationSteps; i++)
                micro.Add(Objective.Apply(Data.NextTrainBatch(), o.Seed, TrainDraw(i)));
            var result = Trainer.Step(micro);
            int step = result.Step;
            onEvent?.Invoke(new StepEvent(result, o.Steps, Trainer.SkippedSteps));
            if (Trainer.ConsecutiveSkips >= o.MaxConsecutiveSkips)
            {
                Metrics.Add(new MetricsRow(step, result.Loss, double.NaN, result.LearningRate, result.GradientNorm, true));
                Stop($"{Trainer.ConsecutiveSkips} steps in a row (the last: step {step}) had a non-finite loss ({result.Loss}) or gradient norm ({result.GradientNorm}); " +
                     "they were skipped, so the weights are those of the last good step");
            }

            bool checkpoint = step % o.CheckpointEvery == 0 || step == o.Steps;
            bool validate = step % o.EvalEvery == 0 || checkpoint;  // every checkpoint carries its validation loss: the best one is kept
            double val = validate ? ValidationLoss() : double.NaN;
            if (validate) onEvent?.Invoke(new ValidationEvent(step, val));
            Metrics.Add(new MetricsRow(step, result.Loss, val, result.LearningRate, result.GradientNorm, result.Skipped));
            if (validate && !double.IsFinite(val)) Stop($"the validation loss at step {step} is {val}");
            if (checkpoint)
            {
                string folder = SaveCheckpoint(val);  // not inside onEvent?.Invoke(...): its arguments are skipped when null
                onEvent?.Invoke(new CheckpointEvent(step, folder));
            }
        }
    }

    /// <summary>Writes the metrics so far, then stops the run with a message that says where to go on from.</summary>
    private void Stop(string why)
    {
        WriteMetrics(Options.Out, Metrics);
        var last = RunFolder.StepFolders(Options.Out).LastOrDefault();
        throw new TrainingDivergedException($"training stopped: {why}. " +
            (last.Folder is null ? "No checkpoint was written yet." : $"The last checkpoint is {last.Folder}.") +
            " Lower --lr or raise --warmup and start again, or resume from a checkpoint.");
    }

    /// <summary>Mean loss over the first EvalBatches validation batches (always the same ones).</summary>
    public double ValidationLoss()
    {
        int n = Math.Min(Options.EvalBatches, Data.ValidationBatchCount);
        if (n == 0) throw new ArgumentException($"the validation split ({Data.ValidationCount} tokens) is shorter than one batch of {Data.WindowLength}");
        // fixed draws: every pass sees the same corrupted spans and prefixes, so the losses compare across steps
        var batches = Enumerable.Range(0, n).Select(i => Objective.Apply(Data.ValidationBatch(i), Options.Seed, Objectives.Objective.ValidationDraw(i)));
        return Trainer.Evaluate(Model, batches).MeanLoss;
    }

    /// <summary>Writes weights, config and training state as one step folder, then the metrics, then prunes the
    /// older step folders to the last <see cref="TrainOptions.KeepLast"/> and the best; returns the folder.</summary>
    public string SaveCheckpoint(double validationLoss = double.NaN)
    {
        int step = Trainer.CompletedSteps;
        var adam = Trainer.Optimizer;
        var state = new TrainingState(step, adam.Step, Trainer.SkippedSteps, Data.OrderState, Data.Position, validationLoss, DataSha256,
            JsonSerializer.Serialize(Options, JsonOptions))
        {
            Tensors = [.. Model.Parameters.Trainable.Select(adam.MOf), .. Model.Parameters.Trainable.Select(adam.VOf)],
        };
        string folder = Checkpoint.Save(Options.Out, step, Model.ConfigFile(Tokenizer.Name), Model.Parameters, state);
        WriteMetrics(Options.Out, Metrics);
        Prune();
        return folder;
    }

    /// <summary>The step of the best checkpoint still on disk (lowest validation loss), if any has one.</summary>
    public (long Step, double Loss)? BestCheckpoint()
    {
        var val = Metrics.Where(r => !double.IsNaN(r.ValidationLoss)).GroupBy(r => r.Step).ToDictionary(g => (long)g.Key, g => g.Last().ValidationLoss);
        var best = RunFolder.StepFolders(Options.Out).Where(f => val.ContainsKey(f.Step)).Select(f => (f.Step, Loss: val[f.Step]))
            .OrderBy(f => f.Loss).ThenByDescending(f => f.Step).ToList();
        return best.Count == 0 ? null : best[0];
    }

    private void Prune()
    {
        if (Options.KeepLast == 0) return;
        var keep = RunFolder.StepFolders(Options.Out).TakeLast(Options.KeepLast).Select(f => f.Step).ToHashSet();
        if (BestCheckpoint() is { } best) keep.Add(best.Step);
        RunFolder.Prune(Options.Out, keep);
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    /// <param name="Skipped">1 in metrics.csv: the step's loss or gradient norm was not finite and no update was made.</param>
    public readonly record struct MetricsRow(int Step, double TrainLoss, double ValidationLoss, float LearningRate, double GradientNorm, bool Skipped = false);

    private const string MetricsHeader = "step,train_loss,val_loss,lr,grad_norm,skipped";

    /// <summary>The rows of a run folder's metrics.csv (none when it has no such file); files from before the
    /// "skipped" column read as not skipped. A malformed line is refused naming the file and the line.</summary>
    public static List<MetricsRow> ReadMetrics(string runFolder)
    {
        string path = Path.Combine(runFolder, MetricsFile);
        if (!File.Exists(path)) return [];
        var inv = CultureInfo.InvariantCulture;
        var rows = new List<MetricsRow>();
        int number = 1;
        foreach (string line in File.ReadLines(path).Skip(1))
        {
            number++;
            if (line.Length == 0) continue;
            var f = line.Split(',');
            if (f.Length is not (5 or 6)
                || !int.TryParse(f[0], NumberStyles.Integer, inv, out int step)
                || !double.TryParse(f[1], NumberStyles.Float, inv, out double train)
                || !double.TryParse(f[2], NumberStyles.Float, inv, out double val)
                || !float.TryParse(f[3], NumberStyles.Float, inv, out float lr)
                || !double.TryParse(f[4], NumberStyles.Float, inv, out double norm)
                || f.Length == 6 && f[5] is not ("0" or "1"))
                throw new InvalidDataException($"{path}, line {number}: \"{line}\" is not a row of {MetricsHeader}");
            rows.Add(new MetricsRow(step, train, val, lr, norm, f.Length == 6 && f[5] == "1"));
        }
        return rows;
    }

    public static void WriteMetrics(string runFolder, IEnumerable<MetricsRow> rows)
    {
        var inv = CultureInfo.InvariantCulture;
        var lines = rows.Select(r => string.Join(',', r.Step.ToString(inv), r.TrainLoss.ToString("R", inv),
            r.ValidationLoss.ToString("R", inv), r.LearningRate.ToString("R", inv), r.GradientNorm.ToString("R", inv), r.Skipped ? "1" : "0"));
        AtomicFile.WriteAllText(Path.Combine(runFolder, MetricsFile), MetricsHeader + "\n" + string.Join('\n', lines) + "\n");
    }
}

/// <summary>The run cannot go on: its loss or gradients stayed non-finite (or its validation loss became so).
/// Nothing non-finite was written into the weights or a checkpoint.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);
