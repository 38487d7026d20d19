using System.Text.Json;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;

namespace Llm.Training;

/// <summary>Everything `train` needs; defaults make a CPU demo of a few minutes on 2 cores.</summary>
public sealed record TrainOptions
{
    public string Preset { get; init; } = "tiny";          // model size; see Gpt2Config presets
    public string Tokenizer { get; init; } = "byte";       // byte (vocab 256) suits tiny models; gpt2 = BPE, 50257
    public string? DataPath { get; init; }                  // null: the embedded Pride and Prejudice
    public int Steps { get; init; } = 3000;                // optimizer updates: ~3 min for tiny on 2 cores, val ≈ 1.4 nats
    public int Batch { get; init; } = 16;                  // B sequences per micro-batch
    public int Seq { get; init; } = 64;                    // T tokens per sequence (≤ the preset's context)
    public double ValidationFraction { get; init; } = 0.1; // the held-out tail of the text
    public int EvalEvery { get; init; } = 250;             // steps between validation passes (and at the end)
    public int EvalBatches { get; init; } = 20;            // validation batches per pass
    public int CheckpointEvery { get; init; } = 1000;      // steps between checkpoints (and at the end)
    public ulong Seed { get; init; } = 1337;               // weight initialisation
    public string Out { get; init; } = "runs/tiny";        // run folder: step_NNNNNN checkpoints, metrics.csv
    public OptimizerOptions Optimizer { get; init; } = new();

    public TrainOptions Validate()
    {
        if (Steps < 1) throw new ArgumentException($"--steps must be ≥ 1, got {Steps}");
        if (Batch < 1) throw new ArgumentException($"--batch must be ≥ 1, got {Batch}");
        if (Seq < 1) throw new ArgumentException($"--seq must be ≥ 1, got {Seq}");
        if (EvalEvery < 1) throw new ArgumentException($"--eval-every must be ≥ 1, got {EvalEvery}");
        if (EvalBatches < 1) throw new ArgumentException($"--eval-batches must be ≥ 1, got {EvalBatches}");
        if (CheckpointEvery < 1) throw new ArgumentException($"--checkpoint-every must be ≥ 1, got {CheckpointEvery}");
        if (ValidationFraction is <= 0 or >= 1) throw new ArgumentException($"validation fraction must be in (0, 1), got {ValidationFraction}");
        return this;
    }
}

/// <summary>What the loop tells its caller (the CLI draws a progress bar from it).</summary>
public abstract record TrainingEvent;
public sealed record StepEvent(StepResult Result, int TotalSteps) : TrainingEvent;
public sealed record ValidationEvent(int Step, double Loss) : TrainingEvent;
public sealed record CheckpointEvent(int Step, string Folder) : TrainingEvent;

/// <summary>
/// A whole training run: tokenize the corpus, build or resume the model, then for each step take a batch, update,
/// validate and checkpoint on schedule. Resuming restores weights, AdamW moments, step, data position and RNG state,
/// so the continued run reproduces the uninterrupted one bit for bit on the CPU.
/// </summary>
public sealed class TrainingRun
{
    public TrainOptions Options { get; }
    public ITokenizer Tokenizer { get; }
    public TokenDataset Data { get; }
    public Gpt2 Model { get; }
    public Trainer Trainer { get; }
    public Common.Rng Rng { get; }
    /// <summary>(step, train loss, validation loss or NaN) for every step of this run folder, resumed steps included.</summary>
    public List<MetricsRow> Metrics { get; } = [];

    public const string MetricsFile = "metrics.csv";

    private TrainingRun(TrainOptions options, ITokenizer tokenizer, TokenDataset data, Gpt2 model, Trainer trainer, Common.Rng rng)
    {
        Options = options; Tokenizer = tokenizer; Data = data; Model = model; Trainer = trainer; Rng = rng;
    }

    /// <summary>A fresh run: weights initialised from the seed.</summary>
    public static TrainingRun Start(IBackend backend, TrainOptions options)
    {
        options.Validate();
        var tokenizer = Tokenizers.Create(options.Tokenizer);
        var config = Gpt2Config.FromPreset(options.Preset) with { VocabSize = tokenizer.VocabSize };
        if (options.Seq > config.ContextLength)
            throw new ArgumentException($"--seq {options.Seq} exceeds the context length {config.ContextLength} of preset '{options.Preset}'");
        var data = LoadData(options, tokenizer);
        var model = new Gpt2(backend, config);
        model.InitializeWeights(options.Seed);
        var run = new TrainingRun(options, tokenizer, data, model, new Trainer(model, options.Optimizer, options.Steps), new Common.Rng(options.Seed));
        return run;
    }

    /// <summary>Continues the run saved in <paramref name="checkpoint"/> (a step folder or a run folder's latest).
    /// The saved options are used; <paramref name="steps"/> (when given) extends or shortens the run.</summary>
    public static TrainingRun Resume(IBackend backend, string checkpoint, string? outFolder = null, int? steps = null)
    {
        string folder = Checkpoint.ResolveModelFolder(checkpoint);
        var (model, tokenizerName) = Gpt2.Load(folder, backend);
        // the moments are read into scratch tensors first: the trainer (and its AdamW) needs the saved options
        var m = backend.Allocate(DType.F32, [(int)model.Parameters.Count], "adam.m");
        var v = backend.Allocate(DType.F32, [(int)model.Parameters.Count], "adam.v");
        string statePath = Path.Combine(folder, Checkpoint.TrainingStateFile);
        if (!File.Exists(statePath)) throw new FileNotFoundException($"{folder} has no {Checkpoint.TrainingStateFile}: it holds weights only and cannot be resumed");
        var state = TrainingState.Load(statePath, m, v);
        var options = JsonSerializer.Deserialize<TrainOptions>(state.TrainerJson, JsonOptions)
            ?? throw new InvalidDataException($"{statePath}: no trainer options");
        options = options with { Steps = steps ?? options.Steps, Out = outFolder ?? options.Out };
        options.Validate();
        if (tokenizerName != options.Tokenizer)
            throw new InvalidDataException($"{folder}: config.json names tokenizer '{tokenizerName}' but the training state says '{options.Tokenizer}'");
        var tokenizer = Tokenizers.Create(tokenizerName);
        var data = LoadData(options, tokenizer);
        var trainer = new Trainer(model, options.Optimizer, options.Steps);
        backend.Copy(m, trainer.Optimizer.M);
        backend.Copy(v, trainer.Optimizer.V);
        trainer.Optimizer.Step = checked((int)state.Step);
        data.Position = state.DataPosition;
        var run = new TrainingRun(options, tokenizer, data, model, trainer, new Common.Rng(state.RngState));
        run.Metrics.AddRange(ReadMetrics(options.Out).Where(m => m.Step <= state.Step));
        return run;
    }

    private static TokenDataset LoadData(TrainOptions options, ITokenizer tokenizer)
    {
        string text = Corpus.Load(options.DataPath);
        return new TokenDataset(tokenizer.Encode(text), options.Batch, options.Seq, options.ValidationFraction);
    }

    /// <summary>Runs the remaining steps, reporting each event to <paramref name="onEvent"/>.</summary>
    public void Run(Action<TrainingEvent>? onEvent = null, CancellationToken cancel = default)
    {
        var o = Options;
        Directory.CreateDirectory(o.Out);
        while (Trainer.Optimizer.Step < o.Steps && !cancel.IsCancellationRequested)
        {
            var micro = new List<(int[], int[])>(o.Optimizer.AccumulationSteps);
            for (int i = 0; i < o.Optimizer.AccumulationSteps; i++)
            {
                var batch = Data.NextTrainBatch();
                micro.Add((batch.Inputs, batch.Targets));
            }
            var result = Trainer.Step(micro, o.Batch, o.Seq);
            onEvent?.Invoke(new StepEvent(result, o.Steps));
            int step = result.Step;
            double val = double.NaN;
            if (step % o.EvalEvery == 0 || step == o.Steps)
            {
                val = ValidationLoss();  // evaluated whether or not anyone listens
                onEvent?.Invoke(new ValidationEvent(step, val));
            }
            Metrics.Add(new MetricsRow(step, result.Loss, val, result.LearningRate, result.GradientNorm));
            if (step % o.CheckpointEvery == 0 || step == o.Steps)
            {
                string folder = SaveCheckpoint();  // not inside onEvent?.Invoke(...): its arguments are skipped when null
                onEvent?.Invoke(new CheckpointEvent(step, folder));
            }
        }
    }

    /// <summary>Mean loss over the first EvalBatches validation batches (always the same ones).</summary>
    public double ValidationLoss()
    {
        int n = Math.Min(Options.EvalBatches, Data.ValidationBatchCount);
        if (n == 0) throw new ArgumentException($"the validation split ({Data.ValidationCount} tokens) is shorter than one batch of {Data.WindowLength}");
        var batches = Enumerable.Range(0, n).Select(i => { var b = Data.ValidationBatch(i); return (b.Inputs, b.Targets); });
        return Trainer.Evaluate(Model, batches, Options.Batch, Options.Seq).MeanLoss;
    }

    /// <summary>Writes weights, config and training state as one step folder, then the metrics; returns the folder.</summary>
    public string SaveCheckpoint()
    {
        int step = Trainer.Optimizer.Step;
        var state = new TrainingState(step, Rng.State, Data.Position, Trainer.Optimizer.M, Trainer.Optimizer.V, JsonSerializer.Serialize(Options, JsonOptions));
        string folder = Checkpoint.Save(Options.Out, step, new HfConfig(Model.Config, Tokenizer.Name), Model.Parameters, state);
        WriteMetrics(Options.Out, Metrics);
        return folder;
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public readonly record struct MetricsRow(int Step, double TrainLoss, double ValidationLoss, float LearningRate, double GradientNorm);

    public static List<MetricsRow> ReadMetrics(string runFolder)
    {
        string path = Path.Combine(runFolder, MetricsFile);
        if (!File.Exists(path)) return [];
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        return File.ReadLines(path).Skip(1).Where(l => l.Length > 0).Select(l =>
        {
            var f = l.Split(',');
            return new MetricsRow(int.Parse(f[0], inv), double.Parse(f[1], inv), double.Parse(f[2], inv), float.Parse(f[3], inv), double.Parse(f[4], inv));
        }).ToList();
    }

    public static void WriteMetrics(string runFolder, IEnumerable<MetricsRow> rows)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var lines = rows.Select(r => string.Join(',', r.Step.ToString(inv), r.TrainLoss.ToString("R", inv),
            r.ValidationLoss.ToString("R", inv), r.LearningRate.ToString("R", inv), r.GradientNorm.ToString("R", inv)));
        AtomicFile.WriteAllText(Path.Combine(runFolder, MetricsFile), "step,train_loss,val_loss,lr,grad_norm\n" + string.Join('\n', lines) + "\n");
    }
}
