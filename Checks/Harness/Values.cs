using Llm.Common;

namespace Llm.Checks;

/// <summary>Seeded test data. Values are rounded to F32 on creation so the F32 subject and the F64 oracle start
/// from bit-identical inputs: every difference in the results is then the op's own rounding or error.</summary>
public static class Values
{
    /// <summary>n values ~ shift + scale·N(0, 1), each exactly representable as a float.</summary>
    public static double[] Normal(Rng rng, int n, double scale = 1.0, double shift = 0.0)
    {
        var x = new double[n];
        for (int i = 0; i < n; i++) x[i] = (float)(shift + scale * rng.NextGaussian());
        return x;
    }

    /// <summary>n values uniform in [lo, hi), float-representable.</summary>
    public static double[] Uniform(Rng rng, int n, double lo, double hi)
    {
        var x = new double[n];
        for (int i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        return x;
    }

    /// <summary>n integers uniform in [0, count).</summary>
    public static int[] Ids(Rng rng, int n, int count)
    {
        var ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = rng.NextInt(count);
        return ids;
    }

    public static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }
}
