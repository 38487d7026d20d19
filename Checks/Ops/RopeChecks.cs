using FsCheck;
using FsCheck.Fluent;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>x [B, T, H, HS] ~ N(0, 1), rotating the first Fraction·HS dims (rounded down to even: full, half as in
/// GPT-NeoX, a quarter as in Phi, none); positions up to MaxPosition, uniform per token or, as a KV-cache step passes
/// them, offset..offset+T−1; θ of GPT-NeoX/LLaMA (1e4) and LLaMA 3 (5e5).</summary>
public sealed record RopeCase(int B, int T, int H, int HS, double Fraction, int MaxPosition, bool Contiguous, float Theta, int Seed)
{
    public int RotaryDims => (int)(HS * Fraction) / 2 * 2;
    public int[] Shape => [B, T, H, HS];
    public int Length => B * T * H * HS;
    public override string ToString() =>
        $"x{Dims.Shape(Shape)} rotaryDims={RotaryDims} positions≤{MaxPosition}{(Contiguous ? " contiguous" : "")} theta={Theta} seed={Seed}";

    /// <summary>[B, T] positions drawn from <paramref name="rng"/>.</summary>
    public int[] Positions(Rng rng)
    {
        var p = new int[B * T];
        for (int b = 0; b < B; b++)
        {
            int offset = rng.NextInt(Math.Max(MaxPosition - T, 0) + 1);
            for (int t = 0; t < T; t++) p[b * T + t] = Contiguous ? offset + t : rng.NextInt(MaxPosition + 1);
        }
        return p;
    }

    public static Arbitrary<RopeCase> Arbitrary(int maxPosition = 32768) => Arb.From(
        from b in Dims.Dim(3)
        from t in Dims.Dim(70)
        from h in Dims.Dim(6)
        from hs in Gen.Frequency((3, Gen.Elements(2, 64, 80, 128)), (2, Dims.Dim(130)))
        from fraction in Gen.Elements(1.0, 1.0, 0.5, 0.25, 0.0)
        from position in Gen.Elements(16, 4096, 4096, maxPosition)
        from contiguous in Gen.Elements(true, false)
        from theta in Gen.Elements(10000f, 500000f)
        from seed in Dims.Seed
        let d = Dims.Fit([b, t, h, hs], d => (long)d[0] * d[1] * d[2] * d[3], 200_000)
        select new RopeCase(d[0], d[1], d[2], d[3], fraction, Math.Min(position, maxPosition), contiguous, theta, seed),
        c => Dims.Shrink(c, [c.B, c.T, c.H, c.HS], d => c with { B = d[0], T = d[1], H = d[2], HS = d[3] }));
}

public static class RopeChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Rope", "Forward", RopeCase.Arbitrary(), Forward),
        OpProperty.Of("Rope", "Backward", RopeCase.Arbitrary(), Backward),
        OpProperty.Of("Rope", "BackwardMatchesFiniteDifferences", RopeCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
        OpProperty.Of("Rope", "PreservesPairNorms", RopeCase.Arbitrary(), PreservesPairNorms, 50, definitionOnly: true),
        OpProperty.Of("Rope", "DotProductDependsOnlyOnOffset", RopeCase.Arbitrary(), DotProductDependsOnlyOnOffset, 50, definitionOnly: true),
        OpProperty.Of("Rope", "IdentityAtPositionZeroAndNoRotaryDims", RopeCase.Arbitrary(), IdentityAtPositionZeroAndNoRotaryDims, 50),
    ];

    public static void Forward(RopeCase c, CheckContext context)
    {
        var check = new OpCheck("Rope", c, c.Seed, context);
        var x = Values.Normal(check.Rng, c.Length);
        var p = c.Positions(check.Rng);
        var input = check.Input("input", c.Shape, x);
        var positions = check.Ids("positions", [c.B, c.T], p);
        // each y_i = x_i cos − x_p sin: no cancellation beyond the size of its pair, |(x_i, x_p)|
        var output = check.Output("output", c.Shape, Tolerance.Rope(p.Max()), PairScale(x, c));
        check.Run((b, t) => b.Rope(t(input), t(positions), t(output), c.RotaryDims, c.Theta));
    }

    public static void Backward(RopeCase c, CheckContext context)
    {
        var check = new OpCheck("RopeBackward", c, c.Seed, context);
        var dy = Values.Normal(check.Rng, c.Length);
        var p = c.Positions(check.Rng);
        var dOutput = check.Input("dOutput", c.Shape, dy);
        var positions = check.Ids("positions", [c.B, c.T], p);
        var dInput = check.InOut("dInput", c.Shape, Values.Normal(check.Rng, c.Length), Tolerance.Rope(p.Max()), PairScale(dy, c));
        check.Run((b, t) => b.RopeBackward(t(dOutput), t(positions), t(dInput), c.RotaryDims, c.Theta));
    }

    /// <summary>The largest |(x_i, x_{i+d/2})| of any rotated pair (and |x_j| of any passed-through dim).</summary>
    private static double PairScale(double[] x, RopeCase c)
    {
        int half = c.RotaryDims / 2;
        double most = 0;
        for (int row = 0; row < x.Length; row += c.HS)
        {
            for (int i = 0; i < half; i++) most = Math.Max(most, Math.Sqrt(x[row + i] * x[row + i] + x[row + i + half] * x[row + i + half]));
            for (int j = c.RotaryDims; j < c.HS; j++) most = Math.Max(most, Math.Abs(x[row + j]));
        }
        return most;
    }

    public static void BackwardMatchesFiniteDifferences(RopeCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        var small = c with { B = Math.Min(c.B, 2), T = Math.Min(c.T, 3), H = Math.Min(c.H, 2), HS = Math.Min(c.HS, 12) };
        int[] shape = small.Shape;
        var x = Values.Normal(rng, small.Length);
        var dy = Values.Normal(rng, small.Length);
        var prefill = Values.Normal(rng, small.Length);
        var positions = Oracle.Ids(small.Positions(rng), small.B, small.T);

        Tensor input = Oracle.Tensor(x, shape), output = Oracle.Zeros(shape);
        void Run() => Oracle.Backend.Rope(input, positions, output, small.RotaryDims, small.Theta);
        Tensor dInput = Oracle.Tensor(prefill, shape);
        Oracle.Backend.RopeBackward(Oracle.Tensor(dy, shape), positions, dInput, small.RotaryDims, small.Theta);
        FiniteDifferences.Check("RopeBackward", "input", small, x, Oracle.Through(input, x, Run, output), dy, Oracle.Delta(Oracle.Read(dInput), prefill), rng);
    }

    /// <summary>A rotation keeps every pair's length: |(y_i, y_{i+d/2})| = |(x_i, x_{i+d/2})| to F64 rounding (1e-12
    /// relative is ~10⁴ ulp), and pass-through dims are copied exactly.</summary>
    public static void PreservesPairNorms(RopeCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        var x = Values.Normal(rng, c.Length);
        var y = Oracle.Zeros(c.Shape);
        Oracle.Backend.Rope(Oracle.Tensor(x, c.Shape), Oracle.Ids(c.Positions(rng), c.B, c.T), y, c.RotaryDims, c.Theta);
        var ys = Oracle.Read(y);
        int half = c.RotaryDims / 2;
        for (int row = 0; row < x.Length; row += c.HS)
        {
            for (int i = row; i < row + half; i++)
            {
                double before = Math.Sqrt(x[i] * x[i] + x[i + half] * x[i + half]), after = Math.Sqrt(ys[i] * ys[i] + ys[i + half] * ys[i + half]);
                if (!(Math.Abs(after - before) <= 1e-12 * before))
                    throw new OpCheckException($"Rope: pair ({i}, {i + half}) has length {after:R} after, {before:R} before\n  case: {c}");
            }
            for (int j = row + c.RotaryDims; j < row + c.HS; j++)
                if (ys[j] != x[j]) throw new OpCheckException($"Rope: pass-through element {j} changed from {x[j]:R} to {ys[j]:R}\n  case: {c}");
        }
    }

    /// <summary>RoPE's point: q·k after rotating q to p + s and k to p′ + s is q·k at p and p′, for every head, since
    /// R(a)ᵀR(b) = R(b − a). In F64 the angles (up to ~6.5e4 rad) carry ~1e-11 absolute error, so 1e-9·|q||k|.</summary>
    public static void DotProductDependsOnlyOnOffset(RopeCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        var one = c with { B = 1, T = 2 };   // token 0 is q's, token 1 is k's
        var q = Values.Normal(rng, one.Length);
        int p = rng.NextInt(c.MaxPosition + 1), pk = rng.NextInt(c.MaxPosition + 1), s = rng.NextInt(c.MaxPosition + 1);
        var x = Oracle.Tensor(q, one.Shape);
        double[] Rotated(int a, int b)
        {
            var y = Oracle.Zeros(one.Shape);
            Oracle.Backend.Rope(x, Oracle.Ids([a, b], 1, 2), y, c.RotaryDims, c.Theta);
            return Oracle.Read(y);
        }
        double[] near = Rotated(p, pk), far = Rotated(p + s, pk + s);
        int width = c.H * c.HS;
        for (int h = 0; h < c.H; h++)
        {
            var qs = near.AsSpan(h * c.HS, c.HS);
            double a = Values.Dot(qs, near.AsSpan(width + h * c.HS, c.HS)), b = Values.Dot(far.AsSpan(h * c.HS, c.HS), far.AsSpan(width + h * c.HS, c.HS));
            double scale = Math.Sqrt(Values.Dot(qs, qs) * Values.Dot(near.AsSpan(width + h * c.HS, c.HS), near.AsSpan(width + h * c.HS, c.HS)));
            if (!(Math.Abs(a - b) <= 1e-9 * scale))
                throw new OpCheckException($"Rope: head {h}: q·k = {a:R} at ({p}, {pk}) but {b:R} shifted by {s}\n  case: {c}");
        }
    }

    /// <summary>cos 0 = 1 and sin 0 = 0 exactly, so position 0 is the identity bit for bit, as is rotaryDims = 0, on the
    /// definition and on every subject (a subject's inexact sin/cos at 0, or a stray write, shows here).</summary>
    public static void IdentityAtPositionZeroAndNoRotaryDims(RopeCase c, CheckContext context)
    {
        var x = Values.Normal(new Rng((ulong)c.Seed), c.Length);
        var sides = new List<(string Name, IBackend Backend, DType Float)> { ("oracle", Oracle.Backend, DType.F64) };
        sides.AddRange(context.Subjects.Select(s => (s.Name, s.Backend, s.DType)));
        foreach (var (name, backend, dtype) in sides)
            foreach (var (positionValues, rotaryDims, what) in new[] { (new int[c.B * c.T], c.RotaryDims, "position 0"), (c.Positions(new Rng((ulong)c.Seed)), 0, "rotaryDims 0") })
            {
                var input = backend.Allocate(dtype, c.Shape);
                var output = backend.Allocate(dtype, c.Shape);
                var positions = backend.Allocate(DType.I32, [c.B, c.T]);
                OpCheck.UploadFloats(backend, input, x);
                backend.Upload<int>(positionValues, positions);
                backend.Rope(input, positions, output, rotaryDims, c.Theta);
                var y = OpCheck.Download(backend, output);
                foreach (var t in new[] { input, output, positions }) backend.Release(t);
                int bad = Enumerable.Range(0, y.Length).FirstOrDefault(i => y[i] != x[i], -1);
                if (bad >= 0)
                    throw new OpCheckException($"Rope on {name}: {what} is not the identity: element {bad} is {y[bad]:R}, input {x[bad]:R}\n  case: {c}");
            }
    }
}
