// V vocab (length of one logits row)
using Llm.Common;

namespace Llm.Inference;

/// <summary>
/// How <see cref="Sampler"/> turns a logits row into a token. Defaults sample from the model's own distribution.
/// Applied in Hugging Face's order: repetition penalty, temperature, top-k, top-p.
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>Logits are divided by it: &lt;1 sharpens, &gt;1 flattens; 0 means greedy (always the argmax).</summary>
    public float Temperature { get; init; } = 1f;
    /// <summary>Keep only the k most likely tokens; 0 turns it off.</summary>
    public int TopK { get; init; } = 0;
    /// <summary>Keep the smallest most-likely set whose probability reaches p (nucleus sampling); 1 turns it off.</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>CTRL's penalty (Keskar et al. 2019) on tokens already generated: logit/θ if logit &gt; 0 else logit·θ; 1 turns it off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    public ulong Seed { get; init; } = 1337;

    public bool IsGreedy => Temperature == 0;

    /// <summary>Throws naming the first option outside its range (as ParamName, the property's name); returns this
    /// for chaining. The CLI checks the same ranges while parsing, so its messages name the options as typed.</summary>
    public SamplingOptions Validate()
    {
        if (!(Temperature >= 0) || float.IsPositiveInfinity(Temperature))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "temperature must be finite and >= 0 (0 = greedy)");
        if (TopK < 0)
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "top-k must be >= 0 (0 = off)");
        if (!(TopP > 0 && TopP <= 1))
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "top-p must lie in (0, 1] (1 = off)");
        if (!(RepetitionPenalty > 0) || float.IsPositiveInfinity(RepetitionPenalty))
            throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), RepetitionPenalty, "repetition penalty must be finite and > 0 (1 = off)");
        return this;
    }
}

/// <summary>
/// Picks the next token from one row of logits [V]. Holds its own seeded <see cref="Llm.Common.Rng"/>, so a run
/// with the same seed, model and prompt produces the same text, and <see cref="Rng"/>'s state can be saved.
/// Not thread-safe (it reuses scratch buffers): one sampler per generation stream.
/// </summary>
public sealed class Sampler
{
    public SamplingOptions Options { get; }
    public Rng Rng { get; }

    double[] work = [];  // [V] scratch: logits, then filtered probabilities
    int[] order = [];    // [V] scratch: token ids sorted by logit, descending

    public Sampler(SamplingOptions? options = null)
    {
        Options = (options ?? new SamplingOptions()).Validate();
        Rng = new Rng(Options.Seed);
    }

    /// <summary>
    /// The next token for <paramref name="logits"/> [V]. <paramref name="generated"/> are the tokens already in the
    /// sequence, used only by the repetition penalty.
    /// </summary>
    public int Next(ReadOnlySpan<float> logits, ReadOnlySpan<int> generated = default)
    {
        if (Options.IsGreedy)
        {
            EnsureScratch(logits.Length);
            Span<double> penalized = work.AsSpan(0, logits.Length);
            CopyChecked(logits, penalized);
            ApplyRepetitionPenalty(penalized, generated, Options.RepetitionPenalty);
            return ArgMax(penalized);
        }
        Span<double> probs = Distribution(logits, generated);
        return Draw(probs, Rng.NextDouble());
    }

    /// <summary>
    /// The distribution <see cref="Next"/> samples from, after penalty, temperature, top-k and top-p, renormalized
    /// to sum to 1 (greedy: one-hot on the argmax). Returned span is scratch, valid until the next call.
    /// </summary>
    public Span<double> Distribution(ReadOnlySpan<float> logits, ReadOnlySpan<int> generated = default)
    {
        int V = logits.Length;
        EnsureScratch(V);
        Span<double> probs = work.AsSpan(0, V); // [V]
        CopyChecked(logits, probs);
        ApplyRepetitionPenalty(probs, generated, Options.RepetitionPenalty);
        if (Options.IsGreedy)
        {
            int best = ArgMax(probs);
            probs.Clear();
            probs[best] = 1;
            return probs;
        }

        // softmax(logit / τ), shifted by the max so exp never overflows: p_v = exp((l_v − max) / τ) / Σ exp(...)
        Softmax(probs, Options.Temperature);

        bool filter = Options.TopK > 0 && Options.TopK < V || Options.TopP < 1;
        if (!filter) return probs;

        // rank tokens by probability (ties: lower id first) so top-k and top-p are prefixes of this order
        Span<int> ranked = order.AsSpan(0, V); // [V]
        for (int v = 0; v < V; v++) ranked[v] = v;
        double[] p = work;
        ranked.Sort((a, b) => p[a] != p[b] ? p[b].CompareTo(p[a]) : a.CompareTo(b));

        int keep = Options.TopK > 0 ? Math.Min(Options.TopK, V) : V;
        if (Options.TopP < 1)
        {
            // nucleus among the top-k survivors: smallest prefix whose renormalized mass reaches p
            double kept = 0;
            for (int i = 0; i < keep; i++) kept += probs[ranked[i]];
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += probs[ranked[i]];
                if (cumulative >= Options.TopP * kept) { keep = i + 1; break; }
            }
        }

        for (int i = keep; i < V; i++) probs[ranked[i]] = 0;
        double total = 0;
        for (int i = 0; i < keep; i++) total += probs[ranked[i]];
        for (int i = 0; i < keep; i++) probs[ranked[i]] /= total;
        return probs;
    }

    /// <summary>Index of the largest value; the lowest index among ties.</summary>
    public static int ArgMax(ReadOnlySpan<double> values)
    {
        if (values.IsEmpty) throw new ArgumentException("argmax of an empty logits row");
        int best = 0;
        for (int v = 1; v < values.Length; v++)
            if (values[v] > values[best]) best = v;
        return best;
    }

    /// <summary>In place: x_v ← exp((x_v − max) / τ) / Σ_u exp((x_u − max) / τ), τ &gt; 0.</summary>
    public static void Softmax(Span<double> logits, double temperature)
    {
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException($"softmax temperature must be > 0, got {temperature}", innerException: null);
        double max = logits[ArgMax(logits)];
        double sum = 0;
        for (int v = 0; v < logits.Length; v++)
        {
            logits[v] = Math.Exp((logits[v] - max) / temperature);
            sum += logits[v];
        }
        for (int v = 0; v < logits.Length; v++) logits[v] /= sum;
    }

    /// <summary>
    /// In place, once per distinct token of <paramref name="generated"/>: l ← l/θ if l &gt; 0 else l·θ.
    /// Both branches make a repeated token less likely for θ &gt; 1.
    /// </summary>
    public static void ApplyRepetitionPenalty(Span<double> logits, ReadOnlySpan<int> generated, double penalty)
    {
        if (penalty == 1 || generated.IsEmpty) return;
        if (!(penalty > 0)) throw new ArgumentOutOfRangeException($"repetition penalty must be > 0, got {penalty}", innerException: null);
        var seen = new HashSet<int>();
        for (int i = 0; i < generated.Length; i++)
        {
            int token = generated[i];
            if ((uint)token >= (uint)logits.Length)
                throw new ArgumentOutOfRangeException(
                    $"generated token {token} at position {i} is outside the logits row [0, {logits.Length})", innerException: null);
            if (!seen.Add(token)) continue;
            logits[token] = logits[token] > 0 ? logits[token] / penalty : logits[token] * penalty;
        }
    }

    /// <summary>The token whose cumulative-probability interval holds <paramref name="u"/> ∈ [0, 1).</summary>
    static int Draw(ReadOnlySpan<double> probs, double u)
    {
        double cumulative = 0;
        int last = -1;
        for (int v = 0; v < probs.Length; v++)
        {
            if (probs[v] == 0) continue;
            cumulative += probs[v];
            last = v;
            if (u < cumulative) return v;
        }
        return last; // rounding left the total a hair under u: take the last token with mass
    }

    static void CopyChecked(ReadOnlySpan<float> logits, Span<double> destination)
    {
        if (logits.IsEmpty) throw new ArgumentException("cannot sample from an empty logits row");
        bool anyFinite = false;
        for (int v = 0; v < logits.Length; v++)
        {
            float l = logits[v];
            // −∞ is a legitimate mask (probability 0); NaN or +∞ means the model diverged
            if (float.IsNaN(l) || float.IsPositiveInfinity(l))
                throw new ArgumentException($"logit {l} at token {v} of a row of {logits.Length}; the model produced a non-finite value");
            anyFinite |= !float.IsNegativeInfinity(l);
            destination[v] = l;
        }
        if (!anyFinite) throw new ArgumentException($"all {logits.Length} logits are -infinity; nothing can be sampled");
    }

    void EnsureScratch(int V)
    {
        if (work.Length < V) { work = new double[V]; order = new int[V]; }
    }
}
