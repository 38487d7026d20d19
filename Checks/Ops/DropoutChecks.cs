using FsCheck;
using FsCheck.Fluent;
using Llm.Common;
using Llm.Cpu;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>An <see cref="ElementwiseCase"/> with dropout's p, the stream's 64-bit seed and its offset: 0, small, just
/// below 2³² (the counter's carry into its high word falls inside the tensor) and 2⁴⁰ + k.</summary>
public sealed record DropoutCase(ElementwiseCase Elements, float P, ulong StreamSeed, long Offset)
{
    public override string ToString() => $"{Elements} p={P} streamSeed=0x{StreamSeed:x} offset={Offset}";

    public static Arbitrary<DropoutCase> Arbitrary()
    {
        var elements = ElementwiseCase.Arbitrary();
        return Arb.From(
            from e in elements.Generator
            from p in Gen.Elements(0f, 0.1f, 0.5f, 0.9f, 0.999f)
            from hi in Gen.Choose(int.MinValue, int.MaxValue)
            from lo in Gen.Choose(int.MinValue, int.MaxValue)
            from seedKind in Gen.Elements(0, 1, 2)
            from k in Gen.Choose(0, 1 << 20)
            from offsetKind in Gen.Elements(0, 1, 2, 3)
            let seed = seedKind switch { 0 => 0UL, 1 => (ulong)(uint)lo, _ => (ulong)(uint)hi << 32 | (uint)lo }
            let offset = offsetKind switch { 0 => 0L, 1 => k, 2 => (1L << 32) - 1 - k % Math.Max(1, e.Length), _ => (1L << 40) + k }
            select new DropoutCase(e, p, seed, offset),
            c => elements.Shrinker(c.Elements).Select(e => c with { Elements = e }));
    }
}

/// <summary>Dropout: every subject drops exactly the elements the definition drops; the definition's mask against its
/// own statistics, its replay from (seed, offset) and the generator's published answer.</summary>
public static class DropoutChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Dropout", "Forward", DropoutCase.Arbitrary(), Forward),
        OpProperty.Of("Dropout", "Backward", DropoutCase.Arbitrary(), Backward),
        OpProperty.Of("Dropout", "BackwardMatchesFiniteDifferences", DropoutCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
        OpProperty.Of("Dropout", "KeepsOneMinusPOnAverage", DropoutCase.Arbitrary(), KeepsOneMinusPOnAverage, 10, definitionOnly: true),
        OpProperty.Of("Dropout", "ReplaysFromSeedAndOffset", DropoutCase.Arbitrary(), ReplaysFromSeedAndOffset, 30),
        OpProperty.Of("Dropout", "KnownAnswer", Arb.From(Gen.Elements(false, true)), KnownAnswer, 2),
    ];

    /// <summary>n values ~ scale·N(0, 1) with |v| ≥ 2⁻⁴: a kept element is then never 0, so zeros mark exactly the dropped ones.</summary>
    private static double[] AwayFromZero(Rng rng, int n, double scale = 1) =>
        [.. Values.Normal(rng, n, scale).Select(v => Math.Abs(v) < 0.0625 ? Math.CopySign(0.0625, v) : v)];

    public static void Forward(DropoutCase c, CheckContext context)
    {
        var e = c.Elements;
        var check = new OpCheck("Dropout", c, e.Seed, context);
        var input = check.Input("input", e.Shape, AwayFromZero(check.Rng, e.Length, e.Scale));
        var output = check.Output("output", e.Shape, Tolerance.Dropout);
        check.Run((b, t) => b.Dropout(t(input), t(output), c.P, c.StreamSeed, c.Offset));
        SameMask(check, c, "output", check.OracleValues(output), s => check.SubjectValues(output, s));
    }

    public static void Backward(DropoutCase c, CheckContext context)
    {
        var e = c.Elements;
        var check = new OpCheck("DropoutBackward", c, e.Seed, context);
        var dOutput = check.Input("dOutput", e.Shape, AwayFromZero(check.Rng, e.Length));
        // |dy/(1 − p)| ≥ 2⁻⁴ beside an N(0, 1) prefill: a kept increment never rounds away in f32, so 0 marks exactly the dropped
        var dInput = check.InOut("dInput", e.Shape, Values.Normal(check.Rng, e.Length), Tolerance.Dropout);
        check.Run((b, t) => b.DropoutBackward(t(dOutput), t(dInput), c.P, c.StreamSeed, c.Offset));
        SameMask(check, c, "dInput increment", OpCheck.Increment(check.OracleValues(dInput), dInput.Floats!),
            s => OpCheck.Increment(check.SubjectValues(dInput, s), dInput.Floats!));
    }

    /// <summary>Exactly the oracle's zeros on every subject: the drop decisions agree bit for bit, not within a tolerance.</summary>
    private static void SameMask(OpCheck check, DropoutCase c, string buffer, double[] oracle, Func<int, double[]> subject)
    {
        for (int s = 1; s <= check.SubjectCount; s++)
        {
            var actual = subject(s);
            for (int i = 0; i < oracle.Length; i++)
                if (oracle[i] == 0 != (actual[i] == 0))
                    throw new OpCheckException($"Dropout on {check.SideName(s)}: {buffer} element {i} (stream counter {c.Offset + i}) is " +
                        $"{actual[i]:R} where the definition {(oracle[i] == 0 ? "dropped it" : $"kept it as {oracle[i]:R}")}\n  case: {c}");
        }
    }

    /// <summary>The definition's backward against central differences of its forward, in F64: the forward is linear, so only rounding differs.</summary>
    public static void BackwardMatchesFiniteDifferences(DropoutCase c, CheckContext context) =>
        FiniteDifferences.Activation("DropoutBackward", c, c.Elements.Seed, c.Elements.Length, c.Elements.Scale,
            (input, output) => Oracle.Backend.Dropout(input, output, c.P, c.StreamSeed, c.Offset),
            (dOutput, _, dInput) => Oracle.Backend.DropoutBackward(dOutput, dInput, c.P, c.StreamSeed, c.Offset));

    /// <summary>
    /// Over n = 10⁶ elements the kept count is Binomial(n, 1 − q), q = ⌈p·2²⁴⌉/2²⁴ (within 2⁻²⁴ of p, far below σ): it must
    /// lie within 5σ = 5√(n·q(1 − q)) of n(1 − q) (exactly n at p = 0). The output's mean is unbiased for the input's,
    /// Var(mean(y) − mean(x)) = Σx²·q/(1 − q)/n², so |mean(y) − mean(x)| ≤ 5√(Σx²·q/(1 − q))/n + 1e-12 (x ~ 1 + N(0, 1)).
    /// A 5σ bound fails a right mask with probability ≈ 6e-7 per case; a biased hash or threshold off by a bit position fails it.
    /// </summary>
    public static void KeepsOneMinusPOnAverage(DropoutCase c, CheckContext context)
    {
        const int n = 1_000_000;
        var x = Values.Normal(new Rng((ulong)c.Elements.Seed), n, 1, shift: 1);
        var output = Oracle.Zeros(n);
        Oracle.Backend.Dropout(Oracle.Tensor(x, n), output, c.P, c.StreamSeed, c.Offset);
        var y = Oracle.Read(output);
        double q = DropoutKernel.Threshold("dropout", c.P, c.Offset) / (double)(1 << 24);
        int kept = y.Count(v => v != 0);
        double sigma = Math.Sqrt(n * q * (1 - q));
        if (!(Math.Abs(kept - n * (1 - q)) <= 5 * sigma))
            throw new OpCheckException($"Dropout: kept {kept} of {n}, expected {n * (1 - q):F0} ± 5σ = {5 * sigma:F0}\n  case: {c}");
        double meanGap = Math.Abs(y.Average() - x.Average()), bound = 5 * Math.Sqrt(x.Sum(v => v * v) * q / (1 - q)) / n + 1e-12;
        if (!(meanGap <= bound))
            throw new OpCheckException($"Dropout: mean(output) − mean(input) = {meanGap:E3} > 5σ = {bound:E3}\n  case: {c}");
    }

    /// <summary>On the oracle and every subject: a second call with the same (seed, offset) is bit-identical, a call over
    /// [0, n₁) at offset o then one over [n₁, n) at o + n₁ equals one call over [0, n), forward and backward, and p = 0
    /// returns the input bit for bit.</summary>
    public static void ReplaysFromSeedAndOffset(DropoutCase c, CheckContext context)
    {
        var e = c.Elements;
        var rng = new Rng((ulong)e.Seed);
        int n = e.Length, n1 = rng.NextInt(n + 1);
        var x = Values.Normal(rng, n, e.Scale);
        var prefill = Values.Normal(rng, n);
        var sides = new List<(IBackend Backend, DType DType, string Name)> { (Oracle.Backend, DType.F64, "oracle") };
        sides.AddRange(context.Subjects.Select(s => (s.Backend, s.DType, s.Name)));
        foreach (var (b, dtype, name) in sides)
        {
            var input = b.Allocate(dtype, [n]);
            OpCheck.UploadFloats(b, input, x);
            double[] Forward(bool split)
            {
                var output = b.Allocate(dtype, [n]);
                if (split)
                {
                    b.Dropout(input.Slice(0, [n1]), output.Slice(0, [n1]), c.P, c.StreamSeed, c.Offset);
                    b.Dropout(input.Slice(n1, [n - n1]), output.Slice(n1, [n - n1]), c.P, c.StreamSeed, c.Offset + n1);
                }
                else b.Dropout(input, output, c.P, c.StreamSeed, c.Offset);
                return OpCheck.Download(b, output);
            }
            double[] Backward(bool split)
            {
                var dInput = b.Allocate(dtype, [n]);
                OpCheck.UploadFloats(b, dInput, prefill);
                if (split)
                {
                    b.DropoutBackward(input.Slice(0, [n1]), dInput.Slice(0, [n1]), c.P, c.StreamSeed, c.Offset);
                    b.DropoutBackward(input.Slice(n1, [n - n1]), dInput.Slice(n1, [n - n1]), c.P, c.StreamSeed, c.Offset + n1);
                }
                else b.DropoutBackward(input, dInput, c.P, c.StreamSeed, c.Offset);
                return OpCheck.Download(b, dInput);
            }
            var once = Forward(false);
            Same(name, "a second forward", once, Forward(false));
            Same(name, $"the forward split at {n1}", once, Forward(true));
            if (c.P == 0) Same(name, "the input (p = 0)", OpCheck.Download(b, input), once);
            var grad = Backward(false);
            Same(name, "a second backward", grad, Backward(false));
            Same(name, $"the backward split at {n1}", grad, Backward(true));
        }

        void Same(string side, string what, double[] expected, double[] actual)
        {
            for (int i = 0; i < expected.Length; i++)
                if (BitConverter.DoubleToInt64Bits(expected[i]) != BitConverter.DoubleToInt64Bits(actual[i]))
                    throw new OpCheckException($"Dropout on {side}: {what} differs at element {i}: {actual[i]:R} vs {expected[i]:R}\n  case: {c}");
        }
    }

    /// <summary>
    /// Random123's kat_vectors for philox4x32_10 (ctr = key = 0 → 6627e8d5 e169c58d bc57ac4c 9b00dbd8; all ones → 408f276d
    /// 41c83b0e a20bc7c6 6d5451fd; π's digits 243f6a88 85a308d3 13198a2e 03707344 / a4093822 299f31d0 → d16cfe09 94fdcceb
    /// 5001e420 24126ea1) on <see cref="Philox.Block"/>, then through the op on every side: element 0 at seed 0, offset 0
    /// hashes to 0x6627e8d5, top 24 bits 6694888, so p = 6694888/2²⁴ keeps it and p = 6694889/2²⁴ drops it.
    /// </summary>
    public static void KnownAnswer(bool dropped, CheckContext context)
    {
        (uint, uint, uint, uint, uint, uint, (uint, uint, uint, uint))[] vectors =
        [
            (0, 0, 0, 0, 0, 0, (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
            (~0u, ~0u, ~0u, ~0u, ~0u, ~0u, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
            (0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
        ];
        foreach (var (c0, c1, c2, c3, k0, k1, expected) in vectors)
            if (Philox.Block(c0, c1, c2, c3, k0, k1) is var got && got != expected)
                throw new OpCheckException($"Philox4x32-10 of ({c0:x8} {c1:x8} {c2:x8} {c3:x8}) under ({k0:x8} {k1:x8}) is {got}, Random123 says {expected}");

        float p = (0x6627e8 + (dropped ? 1 : 0)) / (float)(1 << 24);
        var sides = new List<(IBackend Backend, DType DType, string Name)> { (Oracle.Backend, DType.F64, "oracle") };
        sides.AddRange(context.Subjects.Select(s => (s.Backend, s.DType, s.Name)));
        foreach (var (b, dtype, name) in sides)
        {
            var input = b.Allocate(dtype, [1]);
            var output = b.Allocate(dtype, [1]);
            OpCheck.UploadFloats(b, input, [1.0]);
            b.Dropout(input, output, p, 0, 0);
            double y = OpCheck.Download(b, output)[0];
            if (y == 0 != dropped)
                throw new OpCheckException($"Dropout on {name}: H(0, 0) = 0x6627e8d5 should {(dropped ? "drop" : "keep")} element 0 at p = {p:R}, got {y:R}");
        }
    }
}
