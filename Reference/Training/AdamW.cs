using Llm.Models;
using Llm.Tensors;

namespace Llm.Training;

/// <summary>
/// AdamW over a <see cref="ParameterSet"/>: the first and second moments live in two more sets of arenas with the
/// parameters' layout; each parameter's update is the backend's AdamW op on its slice, with weight decay on
/// matrices only (biases, gains and embeddings' norms excluded, as GPT-2/3 training does).
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
        foreach (var p in Parameters.All)
        {
            var hyper = new AdamWParameters(learningRate, Step, Beta1, Beta2, Epsilon, p.Decay ? WeightDecay : 0f);
            backend.AdamW(p.Value, p.Grad, MOf(p), VOf(p), hyper);
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
