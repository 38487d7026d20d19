using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks;

/// <summary>
/// Checks the definition's backward against its forward, in F64 on the oracle: for a random linear functional
/// L(x) = Σ w ⊙ forward(x), the analytic gradient (backward with dOutput = w) must match central differences
/// (L(x + h eᵢ) − L(x − h eᵢ)) / 2h. With h = 1e-5 the truncation error is h²·f‴/6 ≈ 1e-10 relative and the
/// round-off ε·Σ|w ⊙ y|/h ≈ 1e-11·scale, so a relative error of 1e-6 separates a right gradient from a wrong one
/// (a missing term or factor is ≥ 1e-3).
/// </summary>
public static class FiniteDifferences
{
    public const double Step = 1e-5;
    public const double RelativeTolerance = 1e-6;

    /// <summary>
    /// Compares <paramref name="analytic"/> = ∂L/∂x with central differences at up to <paramref name="maxCoords"/>
    /// randomly chosen coordinates of <paramref name="x"/> (all of them when x is small).
    /// <paramref name="forward"/> maps x to the op's outputs (concatenated), <paramref name="w"/> weights them.
    /// Passes when ‖a − fd‖ ≤ 1e-6·max(‖a‖, ‖fd‖) + round-off floor (√k · 10 ε · M / h), M = Σ|w ⊙ y| by default.
    /// <paramref name="roundingMagnitude"/> replaces M where the forward cancels internally, so its rounding grows
    /// with intermediates larger than the outputs (LayerNorm's x − mean at a large mean, GeLU's 1 + tanh u in the tail).
    /// </summary>
    public static void Check(string op, string wrt, object testCase, double[] x, Func<double[], double[]> forward,
        double[] w, double[] analytic, Rng rng, int maxCoords = 40, Func<double[], double>? roundingMagnitude = null)
    {
        if (analytic.Length != x.Length) throw new ArgumentException($"{op}: ∂L/∂{wrt} has {analytic.Length} elements, x {x.Length}");
        int[] coords = x.Length <= maxCoords
            ? Enumerable.Range(0, x.Length).ToArray()
            : Enumerable.Range(0, maxCoords).Select(_ => rng.NextInt(x.Length)).Distinct().ToArray();

        var y0 = forward(x);
        if (y0.Length != w.Length) throw new ArgumentException($"{op}: forward gave {y0.Length} values, w has {w.Length}");
        double magnitude = 0;
        for (int i = 0; i < w.Length; i++) magnitude += Math.Abs(w[i] * y0[i]);

        double diff2 = 0, fd2 = 0, an2 = 0, worst = -1;
        int worstAt = -1;
        double worstFd = 0;
        var xp = (double[])x.Clone();
        foreach (int i in coords)
        {
            xp[i] = x[i] + Step;
            double lp = Values.Dot(forward(xp), w);
            xp[i] = x[i] - Step;
            double lm = Values.Dot(forward(xp), w);
            xp[i] = x[i];
            double fd = (lp - lm) / (2 * Step);
            double d = analytic[i] - fd;
            diff2 += d * d; fd2 += fd * fd; an2 += analytic[i] * analytic[i];
            if (Math.Abs(d) > worst) { worst = Math.Abs(d); worstAt = i; worstFd = fd; }
        }
        if (roundingMagnitude is not null) magnitude = Math.Max(magnitude, roundingMagnitude(y0));
        double floor = Math.Sqrt(coords.Length) * 10 * 1.1e-16 * magnitude / Step;
        double error = Math.Sqrt(diff2), scale = Math.Max(Math.Sqrt(fd2), Math.Sqrt(an2));
        if (!(error <= RelativeTolerance * scale + floor))
            throw new OpCheckException($"{op}: ∂L/∂{wrt} disagrees with central differences: relative error " +
                $"{error / Math.Max(scale, double.MinValue):E3} > {RelativeTolerance:E0} (floor {floor:E1}); worst [{worstAt}] analytic " +
                $"{analytic[worstAt]:R} vs finite difference {worstFd:R} over {coords.Length} coordinates\n  case: {testCase}");
    }
    /// <summary>
    /// An elementwise activation's definition, y = f(x): its backward (dInput += dOutput·f′(x), dOutput = w, into a
    /// pre-filled dInput) against central differences of its forward, on min(n, 200) values x ~ scale·N(0, 1).
    /// <paramref name="roundingMagnitude"/>(x, w, prefill) replaces M where f cancels internally (see <see cref="Check"/>);
    /// x with |x| &lt; <paramref name="awayFromZero"/> moves to ±awayFromZero, off a kink at 0 (ReLU's) that central
    /// differences within h of it would average.
    /// </summary>
    public static void Activation(string op, object testCase, int seed, int n, double scale,
        Action<Tensor, Tensor> forward, Action<Tensor, Tensor, Tensor> backward,
        Func<double[], double[], double[], double>? roundingMagnitude = null, double awayFromZero = 0)
    {
        var rng = new Rng((ulong)seed);
        n = Math.Min(n, 200);
        var x = Values.Normal(rng, n, scale).Select(v => Math.Abs(v) < awayFromZero ? Math.CopySign(awayFromZero, v) : v).ToArray();
        var w = Values.Normal(rng, n);
        var prefill = Values.Normal(rng, n);

        var input = Oracle.Tensor(x, n);
        var output = Oracle.Zeros(n);
        double[] Forward(double[] xs)
        {
            Oracle.Write(input, xs);
            forward(input, output);
            return Oracle.Read(output);
        }
        var dInput = Oracle.Tensor(prefill, n);
        Oracle.Write(input, x);
        backward(Oracle.Tensor(w, n), input, dInput);
        Check(op, "input", testCase, x, Forward, w, Oracle.Delta(Oracle.Read(dInput), prefill), rng,
            roundingMagnitude: roundingMagnitude is null ? null : _ => roundingMagnitude(x, w, prefill));
    }
}

/// <summary>The definition, CpuBackend's scalar kernels always run in F64, and small helpers for calling it directly.</summary>
public static class Oracle
{
    private static readonly Lazy<Cpu.CpuBackend> _backend = new(() => new Cpu.CpuBackend(fastPaths: false));

    public static IBackend Backend => _backend.Value;

    public static Tensor Tensor(double[] values, params int[] shape)
    {
        var t = Backend.Allocate(DType.F64, shape);
        Backend.Upload<double>(values, t);
        return t;
    }

    public static Tensor Ids(int[] values, params int[] shape)
    {
        var t = Backend.Allocate(DType.I32, shape);
        Backend.Upload<int>(values, t);
        return t;
    }

    public static Tensor Zeros(params int[] shape) => Backend.Allocate(DType.F64, shape);

    public static double[] Read(Tensor t)
    {
        var d = new double[t.Length];
        Backend.Download<double>(t, d);
        return d;
    }

    public static void Write(Tensor t, double[] values) => Backend.Upload<double>(values, t);

    /// <summary>The forward as a function of one of its inputs, for <see cref="FiniteDifferences.Check"/>: xs written into
    /// <paramref name="input"/>, <paramref name="run"/>, <paramref name="output"/> read, <paramref name="restore"/> written back.</summary>
    public static Func<double[], double[]> Through(Tensor input, double[] restore, Action run, Tensor output) => xs =>
    {
        Write(input, xs);
        run();
        var y = Read(output);
        Write(input, restore);
        return y;
    };

    /// <summary>after − before, elementwise: what a backward accumulated into a pre-filled gradient.</summary>
    public static double[] Delta(double[] after, double[] before) => OpCheck.Increment(after, before);
}
