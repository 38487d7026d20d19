using Llm.Checks;
// Shapes: a [batch.., M, K] ([batch.., K, M] transA), b [batch.., K, N] ([batch.., N, K] transB), bias [N], output [batch.., M, N].
using Llm.Cpu;
using Llm.Tensors;
using Llm.Vulkan;
using Xunit;

namespace Llm.Conformance.Vulkan;

/// <summary>
/// Vulkan MatMul / MatMulBackward beyond the conformance properties: every layout on odd shapes at odd offsets with the
/// validation layer silent, bit-identical reruns, grids larger than the device's workgroup-count limit (the shader's
/// tile loops), the tile choice from device limits, and the CPU backend's shape-error messages.
/// </summary>
public class VulkanMatMulTests(VulkanFixture fixture) : IClassFixture<VulkanFixture>
{
    private static readonly CpuBackend Cpu = new(fastPaths: false);

    /// <summary>Batch shapes of a and b ("" = rank 2), sizes, flags.</summary>
    public static readonly TheoryData<string, string, int, int, int, bool, bool, bool, bool> Cases = new()
    {
        { "", "", 1, 1, 1, false, false, true, false },
        { "", "", 97, 61, 33, true, false, true, true },
        { "", "", 33, 97, 65, false, true, false, true },
        { "", "", 65, 17, 129, true, true, true, false },
        { "3", "", 31, 67, 129, false, false, true, true },    // x · W: rows collapse
        { "3", "", 31, 67, 17, false, true, true, false },     // x · Wᵀ (the tied LM head)
        { "3", "", 17, 5, 33, true, true, false, true },       // transA with a shared b: dB sums over batches in the shader
        { "", "2,3", 7, 129, 13, false, false, true, false },  // shared a: dA sums over batches
        { "", "2", 19, 3, 97, true, true, false, true },
        { "5", "5", 1, 97, 1, false, false, false, false },
        { "2,2", "2,2", 37, 1, 41, true, false, true, true },
        { "4", "4", 65, 33, 67, false, true, false, false },   // attention-like: q · kᵀ per head
    };

    private static int[] Shape(string batch, int rows, int cols) =>
        [.. batch.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse), rows, cols];

    private static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    /// <summary>A tensor at an odd element offset inside a larger allocation (views are what kernels must index);
    /// F64 on the CPU, whose definition then is the exact reference.</summary>
    private static Tensor Put(IBackend backend, float[] data, int[] shape, string name, int offset = 3)
    {
        bool f64 = backend is CpuBackend;
        var whole = backend.Allocate(f64 ? DType.F64 : DType.F32, [offset + data.Length + 2], name + "+pad");
        var view = whole.Slice(offset, shape, name);
        if (f64) backend.Upload<double>(Array.ConvertAll(data, x => (double)x), view);
        else backend.Upload<float>(data, view);
        return view;
    }

    /// <summary>Against the F64 definition: f32 dot products of length K give NMSE ≈ Kε² (≤ 1e-8 for the 2·10⁶-term
    /// reductions below); a skipped tile, step range or batch gives ≥ 1e-5.</summary>
    private static void AssertClose(double[] expected, double[] actual, string what, double nmse = 1e-7) =>
        VulkanTestData.AssertClose(expected, actual, nmse, what);

    /// <summary>Forward (with its flags) then backward of every gradient, on Vulkan or on the CPU definition in F64.</summary>
    private static Dictionary<string, double[]> Run(IBackend backend, string aBatch, string bBatch, int m, int k, int n,
        bool transA, bool transB, bool bias, bool accumulate)
    {
        string batch = aBatch != "" ? aBatch : bBatch;
        int[] aShape = Shape(aBatch, transA ? k : m, transA ? m : k), bShape = Shape(bBatch, transB ? n : k, transB ? k : n);
        int[] outShape = Shape(batch, m, n);
        int aLength = Tensor.ElementCount(aShape), bLength = Tensor.ElementCount(bShape), outLength = Tensor.ElementCount(outShape);
        var a = Put(backend, Random(aLength, 1), aShape, "a");
        var b = Put(backend, Random(bLength, 2), bShape, "b", offset: 5);
        var biasT = bias ? Put(backend, Random(n, 3), [n], "bias", offset: 1) : null;
        var output = Put(backend, Random(outLength, 4), outShape, "output");
        backend.MatMul(a, b, biasT, output, transA, transB, accumulate);
        var dOutput = Put(backend, Random(outLength, 5), outShape, "dOutput", offset: 7);
        var dA = Put(backend, Random(aLength, 6), aShape, "dA");
        var dB = Put(backend, Random(bLength, 7), bShape, "dB", offset: 2);
        var dBias = Put(backend, Random(n, 8), [n], "dBias", offset: 9);
        backend.MatMulBackward(dOutput, a, b, dA, dB, dBias, transA, transB);
        return new() { ["output"] = OpCheck.Download(backend, output), ["dA"] = OpCheck.Download(backend, dA), ["dB"] = OpCheck.Download(backend, dB), ["dBias"] = OpCheck.Download(backend, dBias) };
    }

    [SkippableTheory, MemberData(nameof(Cases))]
    public void EveryLayoutMatchesTheDefinitionWithValidationSilent(string aBatch, string bBatch, int m, int k, int n,
        bool transA, bool transB, bool bias, bool accumulate)
    {
        var vk = fixture.Backend;
        var expected = Run(Cpu, aBatch, bBatch, m, k, n, transA, transB, bias, accumulate);
        var actual = Run(vk, aBatch, bBatch, m, k, n, transA, transB, bias, accumulate);
        foreach (var (name, values) in expected) AssertClose(values, actual[name], name);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void ResultsAreBitIdenticalAcrossRuns()
    {
        var vk = fixture.Backend;
        var first = Run(vk, "3", "", 67, 129, 33, true, false, true, true);
        var second = Run(vk, "3", "", 67, 129, 33, true, false, true, true);
        foreach (var (name, values) in first) Assert.Equal(values, second[name]);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>More output tiles (or batches) than one dispatch may have groups along x, y or z: the shader loops.</summary>
    [SkippableTheory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void GridsBeyondTheWorkgroupCountLimitAreCovered(int axis)
    {
        var vk = fixture.Backend;
        var tile = vk.MatMulTiles;
        int groups = (int)Math.Min(vk.Info.MaxComputeWorkGroupCount[axis], 65535u);
        // axis 0: N spans more column tiles than groups; 1: M more row tiles; 2: more batches than groups.
        int m = axis == 1 ? groups * (int)tile.BM + 5 : 3, n = axis == 0 ? groups * (int)tile.BN + 7 : 2, k = 2;
        string batch = axis == 2 ? $"{groups + 3}" : "";
        var expected = Run(Cpu, batch, batch, m, k, n, false, axis == 1, true, false);
        var actual = Run(vk, batch, batch, m, k, n, false, axis == 1, true, false);
        foreach (var (name, values) in expected) AssertClose(values, actual[name], $"{name} (axis {axis})");
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>An operand larger than one binding (lavapipe: 128 MiB, less than the tied LM head's [50257, 768]
    /// weight; here 64 KiB on every device): the output is split into regions whose operand ranges each fit.</summary>
    [SkippableFact]
    public void OperandsBeyondMaxStorageBufferRangeAreSplit()
    {
        const ulong binding = 64 << 10;
        using var vk = VulkanTestDevice.OpenWithLimits(maxBindingBytes: binding);
        int k = 32, n = (int)(binding / 4 / (ulong)k) + 129, m = 2;   // b [N, K] spans the binding + 16 KB
        var expected = Run(Cpu, "", "", m, k, n, false, true, true, true);
        var actual = Run(vk, "", "", m, k, n, false, true, true, true);
        foreach (var (name, values) in expected) AssertClose(values, actual[name], name);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void TilesAreChosenFromTheDeviceLimits()
    {
        var vk = fixture.Backend;
        var info = vk.Info;
        var tile = vk.MatMulTiles;
        Assert.True(tile.Invocations <= info.MaxComputeWorkGroupInvocations && tile.SharedBytes <= info.MaxComputeSharedMemorySize);
        Assert.Equal(0u, tile.BM % tile.TM + tile.BN % tile.TN);
        var gpu = info with { Type = "discrete GPU", MaxComputeWorkGroupInvocations = 1024, MaxComputeSharedMemorySize = 48 << 10, MaxComputeWorkGroupSize = [1024, 1024, 64] };
        Assert.Equal(new VulkanBackend.MatMulTile(64, 64, 16, 4, 4), VulkanBackend.ChooseMatMulTiles(gpu, fewWideInvocations: false));
        Assert.Equal(new VulkanBackend.MatMulTile(64, 64, 16, 8, 8), VulkanBackend.ChooseMatMulTiles(gpu, fewWideInvocations: true));
        Assert.Equal(new VulkanBackend.MatMulTile(32, 32, 16, 4, 4), VulkanBackend.ChooseMatMulTiles(gpu with { MaxComputeWorkGroupInvocations = 128 }, fewWideInvocations: false));
        Assert.Equal(new VulkanBackend.MatMulTile(16, 16, 16, 2, 2), VulkanBackend.ChooseMatMulTiles(gpu with { MaxComputeSharedMemorySize = 3 << 10 }, fewWideInvocations: false));
        var none = Assert.Throws<NotSupportedException>(() => VulkanBackend.ChooseMatMulTiles(gpu with { MaxComputeWorkGroupInvocations = 32 }, fewWideInvocations: false));
        Assert.Contains(info.Name, none.Message);
    }

    /// <summary>Bad shapes throw the CPU backend's ArgumentException, word for word.</summary>
    [SkippableFact]
    public void ShapeErrorsMatchTheCpuBackend()
    {
        var vk = fixture.Backend;
        string Error(IBackend backend, Action<IBackend, Func<int[], string, Tensor>> op) =>
            Assert.Throws<ArgumentException>(() => op(backend, (shape, name) => backend.Allocate(DType.F32, shape, name))).Message;
        var bad = new Action<IBackend, Func<int[], string, Tensor>>[]
        {
            (be, t) => be.MatMul(t([4, 5], "a"), t([6, 3], "b"), null, t([4, 3], "out")),                  // inner dimensions
            (be, t) => be.MatMul(t([2, 4, 5], "a"), t([3, 5, 3], "b"), null, t([2, 4, 3], "out")),          // batch dimensions
            (be, t) => be.MatMul(t([4, 5], "a"), t([5, 3], "b"), null, t([3, 4], "out")),                   // output shape
            (be, t) => be.MatMul(t([5, 4], "a"), t([5, 3], "b"), t([4], "bias"), t([4, 3], "out"), transA: true),
            (be, t) => be.MatMul(t([5], "a"), t([5, 3], "b"), null, t([3], "out")),                        // rank
            (be, t) => be.MatMulBackward(t([4, 3], "dOut"), t([4, 5], "a"), t([5, 3], "b"), t([5, 4], "dA"), null, null),
            (be, t) => be.MatMulBackward(t([4, 3], "dOut"), t([4, 5], "a"), t([3, 5], "b"), null, t([5, 3], "dB"), null, transB: true),
            (be, t) => be.MatMulBackward(t([4, 3], "dOut"), t([4, 5], "a"), t([5, 3], "b"), null, null, t([4], "dBias")),
        };
        foreach (var op in bad) Assert.Equal(Error(Cpu, op), Error(vk, op));
        VulkanTestDevice.AssertClean(vk);
    }
}
