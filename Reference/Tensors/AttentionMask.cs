namespace Llm.Tensors;

// Positions: query i of a call sits at absolute position p = QueryOffset + i, key j at position j.

/// <summary>Which keys a query may see before the other rules of <see cref="AttentionMask"/> narrow it.</summary>
public enum Visibility
{
    /// <summary>k ≤ p: a decoder (GPT).</summary>
    Causal,
    /// <summary>every key: an encoder (BERT, T5's encoder) or cross-attention.</summary>
    Bidirectional,
    /// <summary>k &lt; prefix[b] or k ≤ p: the prefix decoder of UniLM and GLM, bidirectional over a per-sequence prefix.</summary>
    Prefix,
}

/// <summary>The fixed sparse patterns of Child et al. 2019, "Generating long sequences with sparse transformers" (§4.2),
/// as one mask over all heads (the union of the two factorized heads), intersected with the visibility.</summary>
public enum SparsePattern
{
    None,
    /// <summary>p − k &lt; Stride (the local band) or (p − k) mod Stride = 0 (every Stride-th key back).</summary>
    Strided,
    /// <summary>⌊p/Stride⌋ = ⌊k/Stride⌋ (the same block) or k mod Stride ≥ Stride − Summary (the block's last columns).</summary>
    Fixed,
}

/// <summary>
/// The attention mask and the score terms that need no gradient, as one description shared by every backend.
/// A key k is visible to query p of sequence b when all of: the <see cref="Visibility"/> rule; p − k &lt; Window when
/// Window &gt; 0 (Mistral's sliding window); the sparse pattern; QuerySegments[b, i] = KeySegments[b, k] when segments are
/// given (documents packed into one sequence never see each other). A query that sees no key gets output 0.
/// score = Scale·q·k − AlibiSlopes[h]·(p − k) + scoreBias[h, i, k].
/// Dropout on the probabilities (GPT-2's attn_pdrop): att[b, h, i, k] is kept iff its Philox counter
/// DropoutOffset + ((b·NH + h)·Tq + i)·Tk + k passes <see cref="Llm.Cpu.DropoutKernel"/>'s test, kept ones scaled by 1/(1 − p).
/// </summary>
public sealed record AttentionMask
{
    public Visibility Visibility { get; init; } = Visibility.Causal;
    /// <summary>Position of the first query: 0 for self-attention over a whole sequence, the cache length for a KV-cache step.</summary>
    public int QueryOffset { get; init; }
    /// <summary>0: no window; else only the last Window positions up to the query (the query included) are visible.</summary>
    public int Window { get; init; }
    public SparsePattern Sparse { get; init; } = SparsePattern.None;
    /// <summary>Child et al.'s l (block length); required for a sparse pattern.</summary>
    public int Stride { get; init; }
    /// <summary>Child et al.'s c: the summary columns per block of the fixed pattern (1 ≤ Summary ≤ Stride).</summary>
    public int Summary { get; init; } = 1;
    /// <summary>[B] I32: the prefix length of each sequence, for <see cref="Visibility.Prefix"/>.</summary>
    public Tensor? PrefixLengths { get; init; }
    /// <summary>[B, Tq] and [B, Tk] I32 segment ids, both or neither.</summary>
    public Tensor? QuerySegments { get; init; }
    public Tensor? KeySegments { get; init; }
    /// <summary>[NH] F32: ALiBi's per-head slopes (Press et al.); the bias −m_h·(p − k) needs no T×T tensor.</summary>
    public Tensor? AlibiSlopes { get; init; }
    /// <summary>The factor on q·k; null means 1/√hs (T5 uses 1).</summary>
    public float? Scale { get; init; }
    /// <summary>p: the probability that a probability is dropped; 0 is no dropout (the undropped kernels, bit for bit).</summary>
    public float Dropout { get; init; }
    public ulong DropoutSeed { get; init; }
    /// <summary>The counter of att[0, 0, 0, 0]; a call consumes B·NH·Tq·Tk counters from here.</summary>
    public long DropoutOffset { get; init; }

    /// <summary>GPT's mask: causal self-attention, nothing else.</summary>
    public static AttentionMask Causal { get; } = new();

    public float ScaleFor(int headSize) => Scale ?? 1f / MathF.Sqrt(headSize);

    /// <summary>Whether key k is visible to query p given the sequence's prefix length; segments are checked apart.</summary>
    public bool Visible(int p, int k, int prefix)
    {
        bool seen = Visibility switch
        {
            Visibility.Causal => k <= p,
            Visibility.Bidirectional => true,
            _ => k < prefix || k <= p,
        };
        if (!seen) return false;
        if (Window > 0 && p - k >= Window) return false;
        return Sparse switch
        {
            SparsePattern.Strided => p - k < Stride || (p - k) % Stride == 0,   // in a causal mask p − k ≥ 0
            SparsePattern.Fixed => p / Stride == k / Stride || k % Stride >= Stride - Summary,
            _ => true,
        };
    }

    /// <summary>The visible keys of query p lie in [First, Last] (a bound: the sparse pattern and segments may hide some inside).</summary>
    public (int First, int Last) Range(int p, int keys, int prefix)
    {
        int last = Visibility switch
        {
            Visibility.Causal => Math.Min(p, keys - 1),
            Visibility.Bidirectional => keys - 1,
            _ => Math.Min(Math.Max(p, prefix - 1), keys - 1),
        };
        int first = Window > 0 ? Math.Max(0, p - Window + 1) : 0;
        return (first, last);
    }

    /// <summary>True when every key in <see cref="Range"/> is visible, so a kernel may skip the per-key test.</summary>
    public bool Dense => Sparse == SparsePattern.None && QuerySegments is null;

    /// <summary>Throws with the field at fault when the description cannot apply to B sequences, Tq queries, Tk keys, NH heads.</summary>
    public void Validate(string op, int batch, int queries, int keys, int heads)
    {
        if (QueryOffset < 0) throw new ArgumentException($"{op}: QueryOffset {QueryOffset} is negative");
        if (Window < 0) throw new ArgumentException($"{op}: Window {Window} is negative");
        if (Sparse != SparsePattern.None && Stride < 1) throw new ArgumentException($"{op}: the {Sparse} sparse pattern needs Stride ≥ 1, got {Stride}");
        if (Sparse == SparsePattern.Fixed && (Summary < 1 || Summary > Stride))
            throw new ArgumentException($"{op}: Summary {Summary} must lie in [1, Stride = {Stride}]");
        if (Visibility == Visibility.Prefix)
        {
            if (PrefixLengths is null) throw new ArgumentException($"{op}: Visibility.Prefix needs PrefixLengths [B = {batch}]");
            Require(op, "PrefixLengths", PrefixLengths, DType.I32, batch);
        }
        else if (PrefixLengths is not null) throw new ArgumentException($"{op}: PrefixLengths given with Visibility.{Visibility}");
        if ((QuerySegments is null) != (KeySegments is null))
            throw new ArgumentException($"{op}: QuerySegments and KeySegments come together");
        if (QuerySegments is not null) Require(op, "QuerySegments", QuerySegments, DType.I32, batch, queries);
        if (KeySegments is not null) Require(op, "KeySegments", KeySegments, DType.I32, batch, keys);
        if (AlibiSlopes is not null) Require(op, "AlibiSlopes", AlibiSlopes, null, heads);
        if (Scale is float s && !float.IsFinite(s)) throw new ArgumentException($"{op}: Scale {s} is not finite");
        if (!(Dropout >= 0f && Dropout < 1f)) throw new ArgumentException($"{op}: Dropout {Dropout} must lie in [0, 1)");
        if (DropoutOffset < 0) throw new ArgumentException($"{op}: DropoutOffset {DropoutOffset} is negative");
    }

    private static void Require(string op, string field, Tensor t, DType? dtype, params int[] shape)
    {
        if (dtype is DType d && t.DType != d) throw new ArgumentException($"{op}: {field} {t.Describe()} must be {d}");
        if (!t.Shape.SequenceEqual(shape))
            throw new ArgumentException($"{op}: {field} {t.Describe()} should be {Tensor.ShapeString(shape)}");
    }
}
