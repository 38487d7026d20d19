using Llm.Models;
using Llm.Tensors;

namespace Llm.Training;

/// <summary>
/// AdamW over the trainable parameters of a <see cref="ParameterSet"/>: the first and second moments live in two more
/// sets of arenas with the gradients' layout (each arena's trainable prefix; frozen parameters have none); the update is the backend's AdamW op once per arena and decay group (the set keeps each group
/// contiguous: <see cref="ParameterSet.DecayRuns"/>), with weight decay on matrices only (biases, gains and
/// embeddings' norms excluded, as GPT-2/3 training does). The op is elementwise, so this is the same, bit for bit,
/// as one call per parameter.
/// </summary>
public sealed class AdamW
{
    public ParameterSet Parameters { get; }
    public IReadOnlyList<Tensor?> M { get; }   // [T_a] first moment per arena, same offsets as the parameters; null: all frozen
    public IReadOnlyList<Tensor?> V { get; }   // [T_a] second moment per arena
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float Epsilon { get; init; } = 1e-8f;
    public float WeightDecay { get; init; } = 0.1f;
    /// <summary>Number of updates taken so far; the next one uses Step + 1 for bias correction.</summary>
    public int Step { get; set; }

    public AdamW(ParameterSet parameters)
    {
        if (parameters.TrainableCount == 0)
            throw new ArgumentException($"every one of the {parameters.All.Count} parameters is frozen: there is nothing to train");
        Parameters = parameters;
        var backend = parameters.Backend;
        string Suffix(Arena a) => parameters.Arenas.Count == 1 ? "" : $".{a.Index}";
        Tensor? Moment(Arena a, string name) => a.Trainable == 0 ? null : backend.Allocate(parameters.DType, [a.Trainable], name + Suffix(a));
        M = parameters.Arenas.Select(a => Moment(a, "adam.m")).ToList();
        V = parameters.Arenas.Select(a => Moment(a, "adam.v")).ToList();
    }

    /// <summary>The first moment of one trainable parameter: its slice of the moment arena, under the parameter's shape.</summary>
    public Tensor MOf(Parameter p) => Moment(M, p).Slice(p.ArenaOffset, p.Shape, "adam.m." + p.Name);
    public Tensor VOf(Parameter p) => Moment(V, p).Slice(p.ArenaOffset, p.Shape, "adam.v." + p.Name);

    private static Tensor Moment(IReadOnlyList<Tensor?> moments, Parameter p) => p.Frozen
        ? throw new ArgumentException($"parameter '{p.Name}' is frozen: it has no optimizer state")
        : moments[p.Arena]!;

    public void Update(float learningRate)
    {
        Step++;
        var backend = Parameters.Backend;
        foreach (var (arena, start, length, decay) in Parameters.DecayRuns())
        {
            var hyper = new AdamWParameters(learningRate, Step, Beta1, Beta2, Epsilon, decay ? WeightDecay : 0f);
            Tensor Run(Tensor t) => t.Slice(start, [length]);   // [length]
            backend.AdamW(Run(arena.Values), Run(arena.Grads!), Run(M[arena.Index]!), Run(V[arena.Index]!), hyper);
        }
    }

    /// <summary>Moments saved as one flat [P] tensor each in the declaration order of the parameters (checkpoints from
    /// before per-parameter moments, when one arena held the parameters in that order): copied into place, the frozen
    /// parameters' skipped.</summary>
    public void LoadDeclarationOrder(Tensor m, Tensor v)
    {
        int offset = 0;
        foreach (var p in Parameters.All)
        {
            if (!p.Frozen)
            {
                Parameters.Backend.Copy(m.Slice(offset, p.Shape), MOf(p));
                Parameters.Backend.Copy(v.Slice(offset, p.Shape), VOf(p));
            }
            offset += p.Value.Length;
        }
    }

    /// <summary>The global L2 norm of all gradients (the trainable parameters'), √Σ g², summed in double over every arena.</summary>
    public static double GradientNorm(ParameterSet parameters) =>
        Math.Sqrt(parameters.Arenas.Sum(a => a.Grads is { } g ? parameters.Backend.SumOfSquares(g) : 0));

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm
    /// before clipping. g ← g · maxNorm / norm when norm &gt; maxNorm; a non-finite norm is returned untouched (the
    /// trainer skips such a step rather than scaling NaN into the gradients).</summary>
    public static double ClipGradientNorm(ParameterSet parameters, double maxNorm)
    {
        double norm = GradientNorm(parameters);
        if (maxNorm > 0 && norm > maxNorm && double.IsFinite(norm))
            foreach (var a in parameters.Arenas)
                if (a.Grads is { } g) parameters.Backend.Scale(g, (float)(maxNorm / norm));
        return norm;
    }
}
