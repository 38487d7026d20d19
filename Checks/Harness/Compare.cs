namespace Llm.Checks;

/// <summary>Subject-versus-oracle comparison: every element within its bound, and the whole buffer by normalized
/// mean squared error. Each check is recorded in the <see cref="CheckContext"/>, failing or not.</summary>
public static class Compare
{
    /// <summary>f32's unit roundoff 2⁻²⁴: storing a value in f32 moves it by at most this much relative.</summary>
    public const double F32Rounding = 5.9604644775390625e-8;

    /// <summary>NMSE = Σ(a − b)² / Σb²; 0 when both are all zero, +∞ when only the oracle is.</summary>
    public static double Nmse(ReadOnlySpan<double> subject, ReadOnlySpan<double> oracle)
    {
        double num = 0, den = 0;
        for (int i = 0; i < oracle.Length; i++)
        {
            double d = subject[i] - oracle[i];
            num += d * d;
            den += oracle[i] * oracle[i];
        }
        return den > 0 ? num / den : num == 0 ? 0 : double.PositiveInfinity;
    }

    /// <summary>√(Σb²/n), the scale that a buffer's small elements are measured against; 0 for an empty buffer.</summary>
    public static double Rms(ReadOnlySpan<double> values)
    {
        double s = 0;
        foreach (double v in values) s += v * v;
        return values.Length > 0 ? Math.Sqrt(s / values.Length) : 0;
    }

    /// <summary>
    /// Fails unless every subject value is finite where the oracle's is, every element satisfies
    /// |a − b| ≤ e·(|b| + S) + floor + slack[i], S = max(RMS(b), <paramref name="scale"/>), and
    /// Σ(a − b)² ≤ nmse·max(Σb², n·scale²) + n·floor² + Σslack². <paramref name="slack"/> is a per-element error no correct subject
    /// can avoid (the f32 store of an accumulated value, when increments are compared); null for none.
    /// <paramref name="scale"/> is the size the elements would have without cancellation (see <see cref="Buf.Scale"/>). The message carries op, subject, buffer,
    /// the worst element with both values and its bound, and the case (with its seed).
    /// </summary>
    public static void Check(CheckContext context, string op, string subject, string buffer, int[] shape,
        double[] actual, double[] oracle, Tolerance tolerance, object testCase, double[]? slack = null, double scale = 0)
    {
        string who = $"{op} on {subject}";
        if (actual.Length != oracle.Length)
            throw new OpCheckException($"{who}: {buffer} has {actual.Length} elements, oracle {oracle.Length}");
        int nonFinite = 0, first = -1;
        for (int i = 0; i < actual.Length; i++)
            if (!double.IsFinite(actual[i]) && double.IsFinite(oracle[i]) && nonFinite++ == 0) first = i;
        if (nonFinite > 0)
            throw new OpCheckException($"{who}: {buffer} has {nonFinite} non-finite element(s) where the oracle is finite " +
                $"(NaN left means never written); first {Index(shape, first)} = {actual[first]}, oracle {oracle[first]}\n  case: {testCase}");

        double bufferRms = Rms(oracle), rms = Math.Max(bufferRms, scale);
        double worstRatio = 0, errSq = 0, sumSq = 0, slackSq = 0;
        int worst = -1;
        for (int i = 0; i < oracle.Length; i++)
        {
            double error = Math.Abs(actual[i] - oracle[i]);
            double extra = slack?[i] ?? 0;
            double bound = tolerance.Element * (Math.Abs(oracle[i]) + rms) + tolerance.Floor + extra;
            // the recorded ratio leaves the floor out where it is the whole bound (exact ops, all-zero buffers)
            double ratio = error == 0 ? 0 : bound > 0 ? error / bound : double.PositiveInfinity;
            if (ratio > worstRatio || worst < 0) { worstRatio = ratio; worst = i; }
            errSq += error * error; sumSq += oracle[i] * oracle[i]; slackSq += extra * extra;
        }
        double nmse = sumSq > 0 ? errSq / sumSq : errSq == 0 ? 0 : double.PositiveInfinity;
        // the bound's Σb² is at least n·scale², as each element's is at least scale: a buffer of cancelled sums
        double reference = Math.Max(sumSq, oracle.Length * scale * scale);
        double nmseRatio = errSq == 0 ? 0 : errSq / (tolerance.Nmse * reference + oracle.Length * tolerance.Floor * tolerance.Floor + slackSq);
        context.Record(op, subject, buffer, worstRatio, nmseRatio, nmse, tolerance);

        if (worstRatio > 1)
        {
            double bound = tolerance.Element * (Math.Abs(oracle[worst]) + rms) + tolerance.Floor + (slack?[worst] ?? 0);
            throw new OpCheckException($"{who}: {buffer}{Index(shape, worst)} is {actual[worst]:R}, oracle {oracle[worst]:R}: " +
                $"error {Math.Abs(actual[worst] - oracle[worst]):E3} exceeds its bound {bound:E3} = {tolerance.Element:0.#E+0}·(|b| + {(scale > bufferRms ? "scale" : "RMS")} {rms:E2})" +
                $"{(tolerance.Floor > 0 ? $" + {tolerance.Floor:0.#E+0}" : "")}{(slack is null ? "" : " + f32 store rounding")} " +
                $"(per element, of {actual.Length}; {tolerance.Why})\n  case: {testCase}");
        }
        if (!(nmseRatio <= 1))
            throw new OpCheckException($"{who}: {buffer} NMSE {nmse:E3} exceeds {tolerance}; worst element {Index(shape, worst)} " +
                $"subject {actual[worst]:R} oracle {oracle[worst]:R} (of {actual.Length})\n  case: {testCase}");
    }

    /// <summary>A flat index as [i, j, k] in <paramref name="shape"/>.</summary>
    public static string Index(int[] shape, int flat)
    {
        if (shape.Length == 0 || flat < 0) return $"[{flat}]";
        var index = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            int size = Math.Max(shape[d], 1);
            index[d] = flat % size;
            flat /= size;
        }
        return "[" + string.Join(",", index) + "]";
    }

    public static void RequireFinite(string op, string buffer, double[] values, object testCase)
    {
        int i = Array.FindIndex(values, v => !double.IsFinite(v));
        if (i >= 0)
            throw new OpCheckException($"{op}: {buffer}[{i}] = {values[i]} (not finite or never written)\n  case: {testCase}");
    }
}
