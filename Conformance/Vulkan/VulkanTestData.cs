using Llm.Checks;
using Llm.Tensors;

namespace Llm.Conformance.Vulkan;

/// <summary>Inputs and the comparison shared by the Vulkan test files (the catalogue's properties run in Ops/).</summary>
internal static class VulkanTestData
{
    /// <summary>n uniform values in [shift − scale, shift + scale).</summary>
    public static float[] Random(int n, int seed, float scale = 1, float shift = 0)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((rng.NextDouble() * 2 - 1) * scale + shift);
        return x;
    }

    /// <summary>A [shape] F32 view 3 elements (12 bytes: below any storage-buffer offset alignment) into a larger
    /// allocation, holding <paramref name="data"/>; no shape means [data.Length].</summary>
    public static Tensor Put(IBackend backend, float[] data, params int[] shape)
    {
        var whole = backend.Allocate(DType.F32, [data.Length + 5]);
        var t = whole.Slice(3, shape.Length == 0 ? [data.Length] : shape);
        backend.Upload<float>(data, t);
        return t;
    }

    /// <summary>A tensor that is its whole allocation (for tests about the allocator itself).</summary>
    public static Tensor PutWhole(IBackend backend, float[] data)
    {
        var t = backend.Allocate(DType.F32, [data.Length]);
        backend.Upload<float>(data, t);
        return t;
    }

    /// <summary>An I32 [n] view one element into its allocation.</summary>
    public static Tensor PutIds(IBackend backend, int[] data)
    {
        var whole = backend.Allocate(DType.I32, [data.Length + 2]);
        var t = whole.Slice(1, [data.Length]);
        backend.Upload<int>(data, t);
        return t;
    }

    public static float[] Get(IBackend backend, Tensor t)
    {
        var x = new float[t.Length];
        backend.Download<float>(t, x);
        return x;
    }

    /// <summary>The harness's comparison (<see cref="Compare.Check"/>) against a reference backend's result, for the
    /// tests beyond the catalogue: NMSE ≤ <paramref name="nmse"/>, and every element within 10·√nmse of
    /// (|b| + RMS(b)), the relative error that would alone give 100× that NMSE: one wrong element fails.</summary>
    public static void AssertClose(double[] expected, double[] actual, double nmse, string what) =>
        Compare.Check(new CheckContext([]), what, "vulkan", "output", [expected.Length], actual, expected,
            new Tolerance(nmse, 10 * Math.Sqrt(nmse), "against the Reference"), what);

    public static void AssertClose(float[] expected, float[] actual, double nmse, string what) =>
        AssertClose(Array.ConvertAll(expected, x => (double)x), Array.ConvertAll(actual, x => (double)x), nmse, what);
}
