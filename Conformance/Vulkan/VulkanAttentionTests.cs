using Llm.Cpu;
using Llm.Tensors;
using Llm.Vulkan;
using Xunit;

using static Llm.Conformance.Vulkan.VulkanTestData;

namespace Llm.Conformance.Vulkan;

/// <summary>
/// Attention and AttentionBackward on Vulkan with validation on, against the CPU Reference in F32 on the shapes the
/// shaders treat specially: T = 1, T past one 64-wide chunk, hs past one 64-wide stripe, odd B/NH/hs, tensors at
/// unaligned element offsets, GPT-2's T = 1024, hs = 128; plus determinism and the shape checks.
/// </summary>
public class VulkanAttentionTests(VulkanFixture fixture) : IClassFixture<VulkanFixture>
{
    public static readonly TheoryData<int, int, int, int> Shapes = new()
    {
        { 1, 1, 1, 1 }, { 2, 13, 3, 7 }, { 3, 7, 13, 3 }, { 1, 67, 2, 5 }, { 2, 129, 1, 130 }, { 1, 64, 4, 64 },
    };

    /// <summary>Runs forward then backward (onto a prefilled dQkv) on both backends and compares all three results.</summary>
    private static void Compare(VulkanBackend vk, IBackend cpu, int b, int t, int nh, int hs, float scale = 1)
    {
        int c = nh * hs;
        int[] qkvShape = [b, t, 3 * c], outShape = [b, t, c], probsShape = [b, nh, t, t];
        var qkv = Random(b * t * 3 * c, 1, scale);
        var dOutput = Random(b * t * c, 2);
        var dQkv = Random(qkv.Length, 3);
        var dims = $"B={b} T={t} NH={nh} hs={hs}";

        var (vOut, vProbs) = (Put(vk, new float[b * t * c], outShape), Put(vk, Random(b * nh * t * t, 4), probsShape));
        var (cOut, cProbs) = (Put(cpu, new float[b * t * c], outShape), Put(cpu, new float[b * nh * t * t], probsShape));
        var (vQkv, cQkv) = (Put(vk, qkv, qkvShape), Put(cpu, qkv, qkvShape));
        vk.Attention(vQkv, vOut, vProbs, nh);
        cpu.Attention(cQkv, cOut, cProbs, nh);
        var probs = Get(vk, vProbs);
        AssertClose(Get(cpu, cOut), Get(vk, vOut), 1e-6, $"attention output {dims}");
        AssertClose(Get(cpu, cProbs), probs, 1e-6, $"attention probs {dims}");
        for (int row = 0; row < b * nh * t; row++)   // the masked future is written, as exact zeros
            for (int s = row % t + 1; s < t; s++)
                Assert.True(probs[row * t + s] == 0, $"probs {dims}: row {row} column {s} is {probs[row * t + s]}, not 0");

        var (vdQkv, cdQkv) = (Put(vk, dQkv, qkvShape), Put(cpu, dQkv, qkvShape));
        vk.AttentionBackward(Put(vk, dOutput, outShape), vQkv, vProbs, vdQkv, nh);
        cpu.AttentionBackward(Put(cpu, dOutput, outShape), cQkv, cProbs, cdQkv, nh);
        var expected = Get(cpu, cdQkv);
        var actual = Get(vk, vdQkv);
        for (int i = 0; i < expected.Length; i++) { expected[i] -= dQkv[i]; actual[i] -= dQkv[i]; }   // the increments alone
        AssertClose(expected, actual, 5e-6, $"attention backward dQkv increment {dims}");
    }

    [SkippableTheory, MemberData(nameof(Shapes))]
    public void ForwardAndBackwardMatchTheReference(int b, int t, int nh, int hs)
    {
        var vk = fixture.Backend;
        Compare(vk, new CpuBackend(fastPaths: false), b, t, nh, hs, scale: 2);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void Gpt2SizedRowsMatchTheReference()
    {
        var vk = fixture.Backend;
        Compare(vk, new CpuBackend(fastPaths: true), 1, 1024, 1, 128);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>Rows longer than the loop budget (forced to 300 iterations per invocation, so on every device) run as
    /// several dispatches over key ranges and query ranges, and still give the Reference's results.</summary>
    [SkippableTheory]
    [InlineData(1, 300, 2, 16)]
    [InlineData(2, 130, 1, 70)]
    public void RowsBeyondTheLoopBudgetAreSplitNotCutShort(int b, int t, int nh, int hs)
    {
        using var vk = VulkanTestDevice.OpenWithLimits(loopIterationBudget: 300);
        long before = vk.Dispatches;
        Compare(vk, new CpuBackend(fastPaths: false), b, t, nh, hs, scale: 2);
        Assert.True(vk.Dispatches - before >= 8, $"{vk.Dispatches - before} dispatches: the rows were not split");
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>Rows past lavapipe's own 65535 iterations per invocation: hs = 36864 makes each kernel loop about 74000
    /// times (score and output stripes forward, 2·hs/64 dims × T rows in backward pass 2), which used to cut the rows
    /// short silently; T stays 64 to keep the test fast (T = 2048 with hs = 1024 does the same in minutes).</summary>
    [SkippableFact]
    public void RowsBeyondLavapipesLoopLimitMatchTheReference()
    {
        var vk = fixture.Backend;
        Compare(vk, new CpuBackend(fastPaths: true), 1, 64, 1, 36864);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void BackwardIsDeterministicAndAccumulates()
    {
        var vk = fixture.Backend;
        const int b = 2, t = 37, nh = 3, hs = 11, c = nh * hs;
        var qkv = Put(vk, Random(b * t * 3 * c, 5, 2), [b, t, 3 * c]);
        var output = vk.Allocate(DType.F32, [b, t, c]);
        var probs = vk.Allocate(DType.F32, [b, nh, t, t]);
        var dOutput = Put(vk, Random(b * t * c, 6), [b, t, c]);
        vk.Attention(qkv, output, probs, nh);

        var once = vk.Allocate(DType.F32, [b, t, 3 * c]);
        var twice = vk.Allocate(DType.F32, [b, t, 3 * c]);
        vk.AttentionBackward(dOutput, qkv, probs, once, nh);
        vk.AttentionBackward(dOutput, qkv, probs, twice, nh);
        vk.AttentionBackward(dOutput, qkv, probs, twice, nh);
        var (first, second) = (Get(vk, once), Get(vk, twice));
        var again = vk.Allocate(DType.F32, [b, t, 3 * c]);
        vk.AttentionBackward(dOutput, qkv, probs, again, nh);
        Assert.Equal(first, Get(vk, again));                              // bit for bit, every run
        for (int i = 0; i < first.Length; i++) Assert.Equal(2 * first[i], second[i]);   // += twice = 2× once, exactly
        Assert.Contains(first, x => x != 0);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>Probs too large for one descriptor run in slices (of heads, of batches); the results are bit for bit
    /// those of one dispatch, since every workgroup computes the same.</summary>
    [SkippableTheory]
    [InlineData(2 * 16 * 16 * 4)]       // two (b, h) rows of probs: heads in groups of 2, one batch at a time
    [InlineData(2 * 5 * 16 * 16 * 4)]   // two whole batches per slice
    public void SlicedCallsMatchOneDispatch(ulong sliceBytes)
    {
        var vk = fixture.Backend;
        using var small = VulkanTestDevice.OpenWithLimits(maxBindingBytes: sliceBytes);
        const int b = 3, t = 16, nh = 5, hs = 2, c = nh * hs;   // t > 3·hs: one batch's qkv is smaller than its probs
        float[] qkv = Random(b * t * 3 * c, 7, 2), dOutput = Random(b * t * c, 8), prefill = Random(b * t * 3 * c, 9);
        (float[] Output, float[] Probs, float[] DQkv, long Dispatches) Run(VulkanBackend be)
        {
            long before = be.Dispatches;
            var output = be.Allocate(DType.F32, [b, t, c]);
            var probs = be.Allocate(DType.F32, [b, nh, t, t]);
            var dQkv = Put(be, prefill, [b, t, 3 * c]);
            var q = Put(be, qkv, [b, t, 3 * c]);
            be.Attention(q, output, probs, nh);
            be.AttentionBackward(Put(be, dOutput, [b, t, c]), q, probs, dQkv, nh);
            return (Get(be, output), Get(be, probs), Get(be, dQkv), be.Dispatches - before);
        }
        var whole = Run(vk);
        var sliced = Run(small);
        Assert.True(sliced.Dispatches > whole.Dispatches, $"not split: {sliced.Dispatches} dispatches, {whole.Dispatches} unsplit");
        Assert.Equal(whole.Output, sliced.Output);
        Assert.Equal(whole.Probs, sliced.Probs);
        Assert.Equal(whole.DQkv, sliced.DQkv);
        VulkanTestDevice.AssertClean(vk);
        VulkanTestDevice.AssertClean(small);
    }

    [SkippableFact]
    public void BadShapesAreRejectedNamingTheTensor()
    {
        var vk = fixture.Backend;
        var qkv = vk.Allocate(DType.F32, [2, 5, 12], "qkv");
        var output = vk.Allocate(DType.F32, [2, 5, 4], "output");
        var probs = vk.Allocate(DType.F32, [2, 2, 5, 5], "probs");
        Assert.Contains("3 heads do not divide C = 4", Assert.Throws<ArgumentException>(() => vk.Attention(qkv, output, probs, 3)).Message);
        Assert.Contains("probs [2, 2, 5, 5]", Assert.Throws<ArgumentException>(() => vk.Attention(qkv, output, probs, 4)).Message);
        var odd = vk.Allocate(DType.F32, [2, 5, 13], "odd");
        Assert.Contains("must be 3C", Assert.Throws<ArgumentException>(() => vk.Attention(odd, output, probs, 2)).Message);
        var dQkv = vk.Allocate(DType.F32, [2, 5, 15], "dQkv");
        Assert.Contains("dQkv", Assert.Throws<ArgumentException>(() => vk.AttentionBackward(output, qkv, probs, dQkv, 2)).Message);
        var ids = vk.Allocate(DType.I32, [2, 5, 12], "ids");
        Assert.Contains("ids", Assert.Throws<NotSupportedException>(() => vk.Attention(ids, output, probs, 2)).Message);
        VulkanTestDevice.AssertClean(vk);
    }
}
