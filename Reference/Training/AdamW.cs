using Llm.Models;
using Llm.Tensors;

namespace Llm.Training;

/// <summary>
/// AdamW over a <see cref="ParameterSet"/>: the first and second moments live in two more sets of arenas with the
/// parameters' layout; the update is the backend's AdamW op once per arena and decay group (the set keeps each group
/// contiguous: <see cref="ParameterSet.DecayRuns"/>), with weight decay on matrices only (biases, gains and
/// embeddings' norms excluded, as GPT-2/3 training does). The op is elementwise, so this is the same, bit for bit,
/// as one call per parameter.
/// </summary>
public sealed class AdamW
{
    public ParameterSet Parameters { get; }
    public IReadOnlyList<Tensor> M { get; }   // [P_a] first moment per arena, same offsets as the parameters
    public IReadOnlyList<Tensor> V { get; }   // [P_a] second moment per arena
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float Epsilon { get; init; } = 1e-8f;
    public float WeightDecay { get; init; } = 0.1f;
    /// <summary>Number of updates taken so far; the next one uses Step + 1 for bias correction.</summary>
    public int Step { get; set; }

    public AdamW(ParameterSet parameters)
    {
        Parameters = parameters;
        var backend = parameters.Backend;
        string Suffix(Arena a) => parameters.Arenas.Count == 1 ? "" : $".{a.Index}";
        M = parameters.Arenas.Select(a => backend.Allocate(parameters.DType, [a.Values.Length], "adam.m" + Suffix(a))).ToList();
        V = parameters.Arenas.Select(a => backend.Allocate(parameters.DType, [a.Values.Length], "adam.v" + Suffix(a))).ToList();
    }

    /// <summary>The first moment of one parameter: its slice of the moment arena, under the parameter's shape.</summary>
    public Tensor MOf(Parameter p) => M[p.Arena].Slice(p.ArenaOffset, p.Shape, "adam.m." + p.Name);
    public Tensor VOf(Parameter p) => V[p.Arena].Slice(p.ArenaOffset, p.Shape, "adam.v." + p.Name);

    public void Update(float learningRate)
    {
        Step++;
        var backend = Parameters.Backend;
        foreach (var (arena, start, length, decay) in Parameters.DecayRuns())
        {
            var hyper = new AdamWParameters(learningRate, Step, Beta1, Beta2, Epsilon, decay ? WeightDecay : 0f);
            Tensor Run(Tensor t) => t.Slice(start, [length]);   // [length]
            backend.AdamW(Run(arena.Values), Run(arena.Grads), Run(M[arena.Index]), Run(V[arena.Index]), hyper);
        }
    }

    /// <summary>Moments saved as one flat [P] tensor each in the declaration order of the parameters (checkpoints from
    /// before per-parameter moments, when one arena held the parameters in that order): copied into place.</summary>
    public void LoadDeclarationOrder(Tensor m, Tensor v)
    {
        int offset = 0;
        foreach (var p in Parameters.All)
        {
            Parameters.Backend.Copy(m.Slice(offset, p.Shape), MOf(p));
            Parameters.Backend.Copy(v.Slice(offset, p.Shape), VOf(p));
            offset += p.Value.Length;
        }
    }

    /// <summary>The global L2 norm of all gradients, √Σ g², summed in double over every arena.</summary>
    public static double GradientNorm(ParameterSet parameters) =>
        Math.Sqrt(parameters.Arenas.Sum(a => parameters.Backend.SumOfSquares(a.Grads)));

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm
    /// before clipping. g ← g · maxNorm / norm when norm &gt; maxNorm; a non-finite norm is returned untouched (the
    /// trainer skips such a step rather than scaling NaN into the gradients).</summary>
    public static double ClipGradientNorm(ParameterSet parameters, double maxNorm)
    {
        double norm = GradientNorm(parameters);
        if (maxNorm > 0 && norm > maxNorm && double.IsFinite(norm))
            foreach (var a in parameters.Arenas) parameters.Backend.Scale(a.Grads, (float)(maxNorm / norm));
        return norm;
    }
}
