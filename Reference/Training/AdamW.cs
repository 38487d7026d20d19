using Llm.Models;
using Llm.Tensors;

namespace Llm.Training;

/// <summary>
/// AdamW over a <see cref="ParameterSet"/>: the first and second moments live in two more arenas with the
/// parameters' layout; each parameter's update is the backend's AdamW op on its slice, with weight decay on
/// matrices only (biases, gains and embeddings' norms excluded, as GPT-2/3 training does).
/// </summary>
public sealed class AdamW
{
    public ParameterSet Parameters { get; }
    public Tensor M { get; }   // [P] first moment, same offsets as the parameters
    public Tensor V { get; }   // [P] second moment
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float Epsilon { get; init; } = 1e-8f;
    public float WeightDecay { get; init; } = 0.1f;
    /// <summary>Number of updates taken so far; the next one uses Step + 1 for bias correction.</summary>
    public int Step { get; set; }

    public AdamW(ParameterSet parameters)
    {
        Parameters = parameters;
        var backend = parameters.Values.Backend;
        M = backend.Allocate(parameters.Values.DType, [(int)parameters.Count], "adam.m");
        V = backend.Allocate(parameters.Values.DType, [(int)parameters.Count], "adam.v");
    }

    public void Update(float learningRate)
    {
        Step++;
        var backend = Parameters.Values.Backend;
        foreach (var p in Parameters.All)
        {
            var hyper = new AdamWParameters(learningRate, Step, Beta1, Beta2, Epsilon, p.Decay ? WeightDecay : 0f);
            backend.AdamW(p.Value, p.Grad, M.Slice(p.Offset, p.Shape), V.Slice(p.Offset, p.Shape), hyper);
        }
    }

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm
    /// before clipping. norm = √Σ g²; g ← g · maxNorm / norm when norm &gt; maxNorm.</summary>
    public static double ClipGradientNorm(ParameterSet parameters, double maxNorm)
    {
        var backend = parameters.Grads.Backend;
        double norm = Math.Sqrt(backend.SumOfSquares(parameters.Grads));
        if (maxNorm > 0 && norm > maxNorm) backend.Scale(parameters.Grads, (float)(maxNorm / norm));
        return norm;
    }
}
