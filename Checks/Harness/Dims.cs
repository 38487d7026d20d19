using FsCheck;
using FsCheck.Fluent;

namespace Llm.Checks;

/// <summary>
/// Generators and shrinkers for tensor dimensions. Kernels break at edges, so sizes are drawn from: 1, primes,
/// numbers one off a power of two (never a multiple of a SIMD width or tile of 8/16/32/64), sizes that span
/// several 256-wide workgroups or CPU chunks (2¹⁴ elements) and GEMM blocks (3072 columns), and uniform sizes; always capped by the caller's maximum.
/// </summary>
public static class Dims
{
    private static readonly int[] Primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 61, 67, 97, 101, 127, 131, 251, 257, 509, 521, 1021, 1031];
    private static readonly int[] OffByOne = [7, 9, 15, 17, 31, 33, 63, 65, 127, 129, 255, 257, 511, 513, 767, 769, 1023, 1025, 3071, 3073, 16383, 16385, 32767, 32769, 65537];

    /// <summary>A dimension in [1, max].</summary>
    public static Gen<int> Dim(int max)
    {
        if (max < 1) throw new ArgumentOutOfRangeException(nameof(max), max, "must be at least 1");
        int[] primes = [.. Primes.Where(p => p <= max)];
        int[] awkward = [.. OffByOne.Where(p => p <= max)];
        var choices = new List<(int, Gen<int>)> { (2, Gen.Constant(1)), (4, Gen.Choose(1, max)) };
        if (primes.Length > 0) choices.Add((3, Gen.Elements(primes)));
        if (awkward.Length > 0) choices.Add((3, Gen.Elements(awkward)));
        return Gen.Frequency(choices.ToArray());
    }

    /// <summary>A positive seed for <see cref="Llm.Common.Rng"/>, printed with the case so it can be replayed.</summary>
    public static Gen<int> Seed => Gen.Choose(1, int.MaxValue - 1);

    /// <summary>Halves (rounding up, so 2ᵏ+1 stays odd-sized) the largest dimension until work(dims) ≤ cap.</summary>
    public static int[] Fit(int[] dims, Func<int[], long> work, long cap)
    {
        var d = (int[])dims.Clone();
        while (work(d) > cap)
        {
            int i = Array.IndexOf(d, d.Max());
            if (d[i] == 1) break;
            d[i] = (d[i] + 1) / 2;
        }
        return d;
    }

    /// <summary>Smaller candidates for one dimension: 1, about half, one less.</summary>
    public static IEnumerable<int> ShrinkDim(int d, int min = 1)
    {
        var seen = new HashSet<int>();
        foreach (int c in new[] { min, (d + 1) / 2, d - 1 })
            if (c >= min && c < d && seen.Add(c)) yield return c;
    }

    /// <summary>Every case with exactly one dimension shrunk; the seed and flags stay, so the failure stays similar.</summary>
    public static IEnumerable<T> Shrink<T>(T value, int[] dims, Func<int[], T> rebuild, int[]? mins = null)
    {
        for (int i = 0; i < dims.Length; i++)
            foreach (int c in ShrinkDim(dims[i], mins?[i] ?? 1))
            {
                var d = (int[])dims.Clone();
                d[i] = c;
                yield return rebuild(d);
            }
    }

    public static string Shape(params int[] shape) => "[" + string.Join(",", shape) + "]";
}
