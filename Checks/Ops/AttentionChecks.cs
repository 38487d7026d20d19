using FsCheck;
using FsCheck.Fluent;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>
/// One attention call: query [B, Tq, NH, hs], key/value [B, Tk, NKV, hs], drawn as Scale·N(0,1) (Scale 3 makes
/// q·k/√hs ≈ 9σ, nearly one-hot rows), under a mask drawn from every rule of <see cref="AttentionMask"/>. Cases with
/// Tk ≥ QueryOffset + Tq are self-attention (the diagonal key exists, so no query is left without keys); Tk &lt; Tq cases
/// are cross-attention (bidirectional, no positions). Some cases drop probabilities (p 0.1 or 0.5) from a counter offset
/// that may cross 2³² inside the call; the keep decisions are a fixed function of the counter, so backward and finite
/// differences see a smooth function of q, k, v.
/// </summary>
public sealed record AttentionCase(int B, int Tq, int Tk, int NH, int NKV, int HS, double Scale, int Seed,
    Visibility Visibility = Visibility.Causal, int QueryOffset = 0, int Window = 0, SparsePattern Sparse = SparsePattern.None,
    int Stride = 0, int Summary = 1, bool Segments = false, bool Alibi = false, bool Bias = false, float? ScoreScale = null,
    float Dropout = 0f, ulong DropoutSeed = 0, long DropoutOffset = 0)
{
    public int[] QueryShape => [B, Tq, NH, HS];
    public int[] KeyShape => [B, Tk, NKV, HS];
    public int[] RowShape => [B, NH, Tq];
    public int[] BiasShape => [NH, Tq, Tk];
    public bool SelfAttention => Tk >= QueryOffset + Tq;
    public override string ToString() =>
        $"q{Dims.Shape(QueryShape)} kv{Dims.Shape(KeyShape)} {Visibility} offset={QueryOffset} window={Window} {Sparse}({Stride},{Summary}) " +
        $"segments={Segments} alibi={Alibi} bias={Bias} scale={Scale} qkScale={ScoreScale?.ToString() ?? "1/√hs"} dropout={Dropout}(seed {DropoutSeed}, offset {DropoutOffset}) seed={Seed}";

    /// <summary>The mask with this case's index tensors, built on whichever backend <paramref name="t"/> maps to.</summary>
    public AttentionMask Mask(Func<string, Tensor?> t) => new()
    {
        Visibility = Visibility, QueryOffset = QueryOffset, Window = Window, Sparse = Sparse, Stride = Stride, Summary = Summary,
        PrefixLengths = t("prefix"), QuerySegments = t("querySegments"), KeySegments = t("keySegments"), AlibiSlopes = t("slopes"),
        Scale = ScoreScale, Dropout = Dropout, DropoutSeed = DropoutSeed, DropoutOffset = DropoutOffset,
    };

    /// <summary>Prefix lengths, segment ids and slopes, from the case's seed (the same on every side).</summary>
    public (int[]? Prefix, int[]? QuerySegments, int[]? KeySegments, double[]? Slopes) MaskData()
    {
        var rng = new Rng((ulong)Seed ^ 0x5eed);
        int[]? prefix = Visibility == Visibility.Prefix ? [.. Enumerable.Range(0, B).Select(_ => rng.NextInt(Tk + 1))] : null;
        int[]? qs = null, ks = null;
        if (Segments)
        {
            // packed documents: segment ids rise along each sequence; queries take their own key's segment
            ks = new int[B * Tk];
            for (int b = 0; b < B; b++)
                for (int k = 0, seg = 0; k < Tk; k++)
                {
                    if (k > 0 && rng.NextInt(5) == 0) seg++;
                    ks[b * Tk + k] = seg;
                }
            qs = new int[B * Tq];
            for (int b = 0; b < B; b++)
                for (int i = 0; i < Tq; i++)
                    qs[b * Tq + i] = ks[b * Tk + (SelfAttention ? QueryOffset + i : i % Tk)];
        }
        double[]? slopes = Alibi ? [.. Enumerable.Range(0, NH).Select(_ => (double)(float)(0.5 * rng.NextDouble()))] : null;
        return (prefix, qs, ks, slopes);
    }

    public static Arbitrary<AttentionCase> Arbitrary() => Arb.From(
        from b in Dims.Dim(3)
        from tq in Dims.Dim(200)
        from tkExtra in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Choose(0, 40)), (1, Gen.Constant(-1)))
        from nkv in Dims.Dim(4)
        from perKv in Gen.Elements(1, 1, 2, 3, 4)
        from hs in Dims.Dim(70)
        from scale in Gen.Elements(0.3, 1.0, 3.0)
        from seed in Dims.Seed
        from visibility in Gen.Elements(Visibility.Causal, Visibility.Causal, Visibility.Bidirectional, Visibility.Prefix)
        from window in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Choose(1, 40)))
        from sparse in Gen.Frequency((4, Gen.Constant(SparsePattern.None)), (1, Gen.Constant(SparsePattern.Strided)), (1, Gen.Constant(SparsePattern.Fixed)))
        from stride in Gen.Choose(1, 12)
        from summary in Gen.Choose(1, 12)
        from flags in Gen.Choose(0, 15)
        from qkScale in Gen.Frequency((4, Gen.Constant<float?>(null)), (1, Gen.Constant<float?>(1f)))
        from dropout in Gen.Frequency((6, Gen.Constant(0f)), (1, Gen.Constant(0.1f)), (1, Gen.Constant(0.5f)))
        from dropOffset in Gen.Elements(0L, 977L, (1L << 32) - 5000)
        // f64 oracle cost ≈ B·NH·Tq·Tk·hs
        let d = Dims.Fit([b, tq, nkv * perKv, hs], d => (long)d[0] * d[2] * d[1] * (d[1] + 40) * Math.Max(d[3], 8), 2_000_000)
        let kv = Enumerable.Range(1, Math.Min(nkv, d[2])).Last(x => d[2] % x == 0)   // the most kv heads ≤ nkv that divide NH
        select Build(d[0], d[1], tkExtra, d[2], kv, d[3], scale, seed, visibility, window, sparse, stride, Math.Min(summary, stride), flags, qkScale)
            with { Dropout = dropout, DropoutSeed = dropout > 0f ? (ulong)seed * 0x9E3779B97F4A7C15 : 0, DropoutOffset = dropout > 0f ? dropOffset : 0 },
        Shrink);

    private static AttentionCase Build(int b, int tq, int tkExtra, int nh, int nkv, int hs, double scale, int seed, Visibility visibility,
        int window, SparsePattern sparse, int stride, int summary, int flags, float? qkScale)
    {
        // unscaled scores (T5) come with unscaled-size inputs: q·k of Scale 3 and hs 70 would be ~600, far past one-hot
        if (qkScale == 1f) scale = Math.Min(scale, 0.3);
        if (tkExtra < 0 && tq > 1)   // cross-attention: fewer keys than queries, no positions
            return new AttentionCase(b, tq, Math.Max(1, tq / 2), nh, nkv, hs, scale, seed, Visibility.Bidirectional,
                Segments: (flags & 1) != 0, Bias: (flags & 4) != 0, ScoreScale: qkScale);
        int offset = Math.Max(0, tkExtra);
        return new AttentionCase(b, tq, tq + offset, nh, nkv, hs, scale, seed, visibility, offset, window, sparse,
            sparse == SparsePattern.None ? 0 : stride, summary, (flags & 1) != 0, (flags & 2) != 0, (flags & 4) != 0, qkScale);
    }

    private static IEnumerable<AttentionCase> Shrink(AttentionCase c)
    {
        foreach (var simpler in new[]
                 {
                     c with { Bias = false }, c with { Alibi = false }, c with { Segments = false },
                     c with { Sparse = SparsePattern.None, Stride = 0, Summary = 1 }, c with { Window = 0 },
                     c with { Dropout = 0f, DropoutSeed = 0, DropoutOffset = 0 },
                 })
            if (simpler != c) yield return simpler;
        foreach (int b in Dims.ShrinkDim(c.B)) yield return c with { B = b };
        foreach (int hs in Dims.ShrinkDim(c.HS)) yield return c with { HS = hs };
        if (c.NH > c.NKV) yield return c with { NH = c.NKV };
        if (c.SelfAttention)
            foreach (int tq in Dims.ShrinkDim(c.Tq)) yield return c with { Tq = tq, Tk = tq + c.QueryOffset };
    }
}

public static class AttentionChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Attention", "Forward", AttentionCase.Arbitrary(), Forward, 60),
        OpProperty.Of("Attention", "Backward", AttentionCase.Arbitrary(), Backward, 60),
        OpProperty.Of("Attention", "BackwardMatchesFiniteDifferences", AttentionCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    /// <summary>The mask's index and slope buffers of one check, by name (null when the case has none).</summary>
    private static Func<Func<Buf, Tensor>, Func<string, Tensor?>> MaskBuffers(OpCheck check, AttentionCase c)
    {
        var (prefix, qs, ks, slopes) = c.MaskData();
        var bufs = new Dictionary<string, Buf>();
        if (prefix is not null) bufs["prefix"] = check.Ids("prefixLengths", [c.B], prefix);
        if (qs is not null) bufs["querySegments"] = check.Ids("querySegments", [c.B, c.Tq], qs);
        if (ks is not null) bufs["keySegments"] = check.Ids("keySegments", [c.B, c.Tk], ks);
        if (slopes is not null) bufs["slopes"] = check.Input("alibiSlopes", [c.NH], slopes);
        return t => name => bufs.TryGetValue(name, out var buf) ? t(buf) : null;
    }

    public static void Forward(AttentionCase c, CheckContext context)
    {
        var check = new OpCheck("Attention", c, c.Seed, context);
        var query = check.Input("query", c.QueryShape, Values.Normal(check.Rng, Tensor.ElementCount(c.QueryShape), c.Scale));
        var key = check.Input("key", c.KeyShape, Values.Normal(check.Rng, Tensor.ElementCount(c.KeyShape), c.Scale));
        var value = check.Input("value", c.KeyShape, Values.Normal(check.Rng, Tensor.ElementCount(c.KeyShape)));
        var bias = c.Bias ? check.Input("scoreBias", c.BiasShape, Values.Normal(check.Rng, Tensor.ElementCount(c.BiasShape))) : null;
        var mask = MaskBuffers(check, c);
        var output = check.Output("output", c.QueryShape, Tolerance.Normalize);
        var rowMax = check.Output("rowMax", c.RowShape, Tolerance.Normalize);
        var rowSum = check.Output("rowSum", c.RowShape, Tolerance.Normalize);
        check.Run((b, t) => b.Attention(t(query), t(key), t(value), bias is null ? null : t(bias), c.Mask(mask(t)), t(output), t(rowMax), t(rowSum)));
    }

    /// <summary>Both sides get the oracle's output and row statistics rounded to f32, so backward alone is compared.</summary>
    public static void Backward(AttentionCase c, CheckContext context)
    {
        var check = new OpCheck("AttentionBackward", c, c.Seed, context);
        var q = Values.Normal(check.Rng, Tensor.ElementCount(c.QueryShape), c.Scale);
        var k = Values.Normal(check.Rng, Tensor.ElementCount(c.KeyShape), c.Scale);
        var v = Values.Normal(check.Rng, Tensor.ElementCount(c.KeyShape));
        var bias = c.Bias ? Values.Normal(check.Rng, Tensor.ElementCount(c.BiasShape)) : null;
        var oracle = OracleForward(c, q, k, v, bias);
        double[] F32(double[] xs) => [.. xs.Select(x => (double)(float)x)];

        var dOutput = check.Input("dOutput", c.QueryShape, Values.Normal(check.Rng, Tensor.ElementCount(c.QueryShape)));
        var query = check.Input("query", c.QueryShape, q);
        var key = check.Input("key", c.KeyShape, k);
        var value = check.Input("value", c.KeyShape, v);
        var scoreBias = bias is null ? null : check.Input("scoreBias", c.BiasShape, bias);
        var output = check.Input("output", c.QueryShape, F32(Oracle.Read(oracle.Output)));
        var rowMax = check.Input("rowMax", c.RowShape, F32(Oracle.Read(oracle.RowMax)));
        var rowSum = check.Input("rowSum", c.RowShape, F32(Oracle.Read(oracle.RowSum)));
        var mask = MaskBuffers(check, c);
        // dS = att ⊙ (dAtt − att·dAtt) cancels to ~0 where one key dominates, and the f32 row statistics move att by
        // ~2⁻²⁴·|s|: so dS is compared at the size it has without cancellation, |dAtt| ≈ √hs (v, dO ~ N(0, 1)), and
        // dQ, dK = Σ dS·scale·(k or q) at scale·√hs·Scale; dropout scales dAtt by up to 1/(1 − p)
        double dS = Math.Sqrt(c.HS) / (1 - c.Dropout), dQK = c.Mask(_ => null).ScaleFor(c.HS) * dS * c.Scale;
        var dQuery = check.InOut("dQuery", c.QueryShape, Values.Normal(check.Rng, q.Length), Tolerance.AttentionBackward, dQK);
        var dKey = check.InOut("dKey", c.KeyShape, Values.Normal(check.Rng, k.Length), Tolerance.AttentionBackward, dQK);
        var dValue = check.InOut("dValue", c.KeyShape, Values.Normal(check.Rng, v.Length), Tolerance.AttentionBackward);
        var dBias = bias is null ? null : check.InOut("dScoreBias", c.BiasShape, Values.Normal(check.Rng, bias.Length), Tolerance.AttentionBackward, dS);
        check.Run((b, t) => b.AttentionBackward(t(dOutput), t(query), t(key), t(value), scoreBias is null ? null : t(scoreBias), c.Mask(mask(t)),
            t(output), t(rowMax), t(rowSum), t(dQuery), t(dKey), t(dValue), dBias is null ? null : t(dBias)));
    }

    /// <summary>The oracle's forward of one case, its tensors kept for backward.</summary>
    private sealed record OracleRun(AttentionCase Case, Tensor Query, Tensor Key, Tensor Value, Tensor? Bias, AttentionMask Mask,
        Tensor Output, Tensor RowMax, Tensor RowSum)
    {
        public void Run() => Oracle.Backend.Attention(Query, Key, Value, Bias, Mask, Output, RowMax, RowSum);
    }

    private static OracleRun OracleForward(AttentionCase c, double[] q, double[] k, double[] v, double[]? bias)
    {
        var (prefix, qs, ks, slopes) = c.MaskData();
        var tensors = new Dictionary<string, Tensor?>
        {
            ["prefix"] = prefix is null ? null : Oracle.Ids(prefix, c.B),
            ["querySegments"] = qs is null ? null : Oracle.Ids(qs, c.B, c.Tq),
            ["keySegments"] = ks is null ? null : Oracle.Ids(ks, c.B, c.Tk),
            ["slopes"] = slopes is null ? null : Oracle.Tensor(slopes, c.NH),
        };
        var run = new OracleRun(c, Oracle.Tensor(q, c.QueryShape), Oracle.Tensor(k, c.KeyShape), Oracle.Tensor(v, c.KeyShape),
            bias is null ? null : Oracle.Tensor(bias, c.BiasShape), c.Mask(name => tensors[name]),
            Oracle.Zeros(c.QueryShape), Oracle.Zeros(c.RowShape), Oracle.Zeros(c.RowShape));
        run.Run();
        return run;
    }

    /// <summary>∂L/∂(q, k, v, scoreBias) of the definition against central differences of its forward, in F64.</summary>
    public static void BackwardMatchesFiniteDifferences(AttentionCase c, CheckContext context)
    {
        c = c with { B = Math.Min(c.B, 2), HS = Math.Min(c.HS, 3) };
        if (c.SelfAttention) c = c with { Tq = Math.Min(c.Tq, 5), Tk = Math.Min(c.Tq, 5) + Math.Min(c.QueryOffset, 3), QueryOffset = Math.Min(c.QueryOffset, 3) };
        else c = c with { Tq = Math.Min(c.Tq, 5), Tk = Math.Min(c.Tk, 3) };
        if (c.NH > 4) c = c with { NH = c.NKV, NKV = c.NKV };
        if (c.NH > 4) c = c with { NH = 1, NKV = 1 };
        var rng = new Rng((ulong)c.Seed);
        var q = Values.Normal(rng, Tensor.ElementCount(c.QueryShape), c.Scale);
        var k = Values.Normal(rng, Tensor.ElementCount(c.KeyShape), c.Scale);
        var v = Values.Normal(rng, Tensor.ElementCount(c.KeyShape));
        var bias = c.Bias ? Values.Normal(rng, Tensor.ElementCount(c.BiasShape)) : null;
        var w = Values.Normal(rng, q.Length);
        var run = OracleForward(c, q, k, v, bias);

        var inputs = new List<(string Name, Tensor Tensor, double[] Values)> { ("query", run.Query, q), ("key", run.Key, k), ("value", run.Value, v) };
        if (bias is not null) inputs.Add(("scoreBias", run.Bias!, bias));
        var grads = inputs.Select(x => (Prefill: Values.Normal(rng, x.Values.Length), Shape: x.Tensor.Shape)).ToArray();
        var gradTensors = grads.Select(g => Oracle.Tensor(g.Prefill, g.Shape)).ToArray();
        Oracle.Backend.AttentionBackward(Oracle.Tensor(w, c.QueryShape), run.Query, run.Key, run.Value, run.Bias, run.Mask, run.Output,
            run.RowMax, run.RowSum, gradTensors[0], gradTensors[1], gradTensors[2], bias is null ? null : gradTensors[3]);
        for (int i = 0; i < inputs.Count; i++)
        {
            var (name, tensor, values) = inputs[i];
            FiniteDifferences.Check("AttentionBackward", name, c, values, Oracle.Through(tensor, values, run.Run, run.Output), w,
                Oracle.Delta(Oracle.Read(gradTensors[i]), grads[i].Prefill), rng, maxCoords: 40);
        }
    }
}
