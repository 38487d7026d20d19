using Llm.Autograd;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;

namespace Llm.Training;

/// <summary>Optimisation settings; defaults follow GPT-2/3 practice at a CPU-demo scale.</summary>
public sealed record OptimizerOptions
{
    public float LearningRate { get; init; } = 2e-3f;      // peak rate for the tiny preset; GPT-2 124M wants ~6e-4
    public int WarmupSteps { get; init; } = 100;           // linear warm-up protects Adam's early, noisy v estimates
    public float MinLearningRateFraction { get; init; } = 0.1f; // cosine decays to 10 % of peak (GPT-3)
    public float WeightDecay { get; init; } = 0.1f;        // on matrices only
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float Epsilon { get; init; } = 1e-8f;
    public float GradientClip { get; init; } = 1.0f;       // global L2 norm; 0 turns clipping off
    public int AccumulationSteps { get; init; } = 1;       // micro-batches summed into one update
}

/// <summary>What one training step reports. <paramref name="Skipped"/>: the loss or the gradient norm was not finite,
/// so no update was applied (the weights are as before the step). <paramref name="Tokens"/>: the positions the step ran,
/// B·T per micro-batch, plus B·Te for an encoder-decoder's encoder.</summary>
public readonly record struct StepResult(int Step, double Loss, double GradientNorm, float LearningRate, int Tokens, TimeSpan Elapsed, bool Skipped = false)
{
    /// <summary>The auxiliary losses' total (Σ Weight · Σ Value over the step; 0 without any).</summary>
    public double AuxiliaryLoss { get; init; }
    /// <summary>MoE: the fraction of (token, choice) slots dropped at an expert's capacity; null without MoE layers.</summary>
    public double? DroppedFraction { get; init; }
}

/// <summary>
/// One training step on a GPT-2: zero the gradients (visible), for each micro-batch run forward, cross-entropy and
/// backward on the tape, then clip the global gradient norm and apply AdamW with the scheduled learning rate.
/// A step whose loss or gradient norm is NaN or infinite is skipped instead (no clipping, no update), as mixed-
/// precision loss scalers and Megatron's skipped iterations do: one bad batch must not write NaN into every weight.
/// </summary>
public sealed class Trainer
{
    public ILanguageModel Model { get; }
    public AdamW Optimizer { get; }
    public OptimizerOptions Options { get; }
    public LearningRateSchedule Schedule { get; }
    private readonly Tape _tape;
    private readonly IBackend _backend;

    public Trainer(ILanguageModel model, OptimizerOptions options, int totalSteps)
    {
        if (options.AccumulationSteps < 1) throw new ArgumentException($"accumulation steps must be ≥ 1, got {options.AccumulationSteps}");
        if (!(options.LearningRate > 0)) throw new ArgumentException($"learning rate must be positive, got {options.LearningRate}");
        Model = model;
        Options = options;
        _backend = model.Backend;
        _tape = new Tape(_backend);
        Optimizer = new AdamW(model.Parameters)
        {
            Beta1 = options.Beta1, Beta2 = options.Beta2, Epsilon = options.Epsilon, WeightDecay = options.WeightDecay,
        };
        Schedule = new LearningRateSchedule(options.LearningRate, Math.Min(options.WarmupSteps, totalSteps), totalSteps, options.MinLearningRateFraction);
    }

    /// <summary>The seed of the dropout streams (the run's seed); each micro-batch's draw is step·accumulation + index.</summary>
    public ulong DropoutSeed { get; init; }

    /// <summary>Steps taken, skipped ones included: what the schedule and the run count. AdamW counts only updates.</summary>
    public int CompletedSteps { get; set; }
    /// <summary>Steps skipped so far for a non-finite loss or gradient norm, and how many of the latest were.</summary>
    public int SkippedSteps { get; set; }
    public int ConsecutiveSkips { get; set; }

    /// <summary>One update from <see cref="OptimizerOptions.AccumulationSteps"/> micro-batches, each (inputs, targets)
    /// of B·T token ids (the causal objective). Returns the mean loss over all non-ignored targets.</summary>
    public StepResult Step(IReadOnlyList<(int[] Inputs, int[] Targets)> microBatches, int batch, int time) =>
        Step([.. microBatches.Select(mb => new TokenBatch(mb.Inputs, mb.Targets, batch, time))]);

    /// <summary>One update from <see cref="OptimizerOptions.AccumulationSteps"/> micro-batches. The loss is the mean
    /// cross-entropy over all non-ignored targets plus the model's auxiliary losses (averaged over the micro-batches);
    /// the result reports the cross-entropy as Loss and the auxiliary terms apart.</summary>
    public StepResult Step(IReadOnlyList<TokenBatch> microBatches)
    {
        if (microBatches.Count != Options.AccumulationSteps)
            throw new ArgumentException($"expected {Options.AccumulationSteps} micro-batches, got {microBatches.Count}");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Model.Parameters.ZeroGrad();
        int counted = microBatches.Sum(mb => mb.Targets.Count(t => t != IgnoreIndex));
        double lossSum = 0, auxiliary = 0;
        long routed = 0, dropped = 0;
        for (int micro = 0; micro < microBatches.Count; micro++)
        {
            var mb = microBatches[micro];
            var (losses, output) = ForwardLoss(mb, micro, out var hostLosses);
            lossSum += hostLosses.Sum(x => (double)x);
            // d(mean loss)/d(loss_n) = 1/count for every counted row (ignored rows get no gradient anyway)
            var dLosses = _tape.Temp(losses.Value.DType, losses.Shape, "dlosses");
            _backend.Fill(dLosses, counted == 0 ? 0 : 1.0 / counted);
            var seeds = new List<(Var, Tensor)> { (losses, dLosses) };
            foreach (var aux in output.Auxiliary)   // Weight · Σ Value per micro-batch, averaged over the micro-batches
            {
                float weight = aux.Weight / microBatches.Count;
                var host = new float[aux.Value.Value.Length];
                _backend.DownloadFloats(aux.Value.Value, host);
                auxiliary += weight * host.Sum(x => (double)x);
                if (!aux.Value.RequiresGrad) continue;
                var dAux = _tape.Temp(aux.Value.Value.DType, aux.Value.Shape, "d" + aux.Name);
                _backend.Fill(dAux, weight);
                seeds.Add((aux.Value, dAux));
            }
            foreach (var slots in output.RoutingSlots)
            {
                var host = new int[slots.Length];
                _backend.Download<int>(slots, host);
                routed += host.Length;
                dropped += host.Count(s => s < 0);
            }
            _tape.Backward(seeds);
            _tape.Reset();
        }
        double loss = counted == 0 ? 0 : lossSum / counted;
        float lr = Schedule.At(CompletedSteps);
        double norm = AdamW.ClipGradientNorm(Model.Parameters, Options.GradientClip);  // leaves non-finite gradients as they are
        bool skip = !double.IsFinite(loss) || !double.IsFinite(auxiliary) || !double.IsFinite(norm);
        if (!skip) Optimizer.Update(lr);
        CompletedSteps++;
        SkippedSteps += skip ? 1 : 0;
        ConsecutiveSkips = skip ? ConsecutiveSkips + 1 : 0;
        _backend.Synchronize();
        int tokens = microBatches.Sum(mb => mb.B * (mb.T + mb.EncoderLength));   // positions run: the decoder's, and an encoder's
        return new StepResult(CompletedSteps, loss, norm, lr, tokens, clock.Elapsed, skip)
        {
            AuxiliaryLoss = auxiliary,
            DroppedFraction = routed == 0 ? null : (double)dropped / routed,
        };
    }

    /// <summary>Target id that contributes neither loss nor gradient (prompt masking, padding).</summary>
    public const int IgnoreIndex = -1;

    /// <summary>Mean cross-entropy (nats per token) of the model on the given batches, without gradients.</summary>
    public static (double MeanLoss, long Tokens) Evaluate(ILanguageModel model, IEnumerable<(int[] Inputs, int[] Targets)> batches, int batch, int time) =>
        Evaluate(model, batches.Select(b => new TokenBatch(b.Inputs, b.Targets, batch, time)));

    /// <summary>Mean cross-entropy (nats per token) over the non-ignored targets of the batches, without gradients.</summary>
    public static (double MeanLoss, long Tokens) Evaluate(ILanguageModel model, IEnumerable<TokenBatch> batches)
    {
        using var tape = new Tape(model.Backend, recording: false);  // given back at the end: validation runs again and again
        double sum = 0; long count = 0;
        foreach (var b in batches)
        {
            ForwardLoss(model, tape, b, out var hostLosses);
            for (int i = 0; i < b.Targets.Length; i++)
                if (b.Targets[i] != IgnoreIndex) { sum += hostLosses[i]; count++; }
            tape.Reset();
        }
        return (count == 0 ? double.NaN : sum / count, count);
    }

    private (Var Losses, ModelOutput Output) ForwardLoss(TokenBatch batch, int micro, out float[] hostLosses)
        => ForwardLoss(Model, _tape, batch, out hostLosses,
            new DropoutStream(DropoutSeed, (long)CompletedSteps * Options.AccumulationSteps + micro));

    private static (Var Losses, ModelOutput Output) ForwardLoss(ILanguageModel model, Tape tape, TokenBatch batch, out float[] hostLosses,
        DropoutStream? dropout = null)
    {
        int n = batch.B * batch.T;
        if (batch.Inputs.Length != n || batch.Targets.Length != n)
            throw new ArgumentException($"a batch of B={batch.B}, T={batch.T} needs {n} inputs and targets, got {batch.Inputs.Length} and {batch.Targets.Length}");
        var tgt = tape.Ids(batch.Targets, [batch.B, batch.T], "targets");  // [B, T]
        var output = model.Forward(tape, batch, dropout);                   // logits [B, T, V]
        var losses = tape.CrossEntropy(output.Logits, tgt, IgnoreIndex);    // [B*T]
        hostLosses = new float[losses.Value.Length];
        model.Backend.DownloadFloats(losses.Value, hostLosses);
        return (losses, output);
    }
}
