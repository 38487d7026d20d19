using Llm.Cpu;
using Llm.Tensors;
using Llm.Vulkan;
using Silk.NET.Vulkan;
using Xunit;

using static Llm.Conformance.Vulkan.VulkanTestData;

namespace Llm.Conformance.Vulkan;

/// <summary>One validated Vulkan backend shared by a test class, opened at its first use inside a test, so that
/// LLM_SKIP_VULKAN=1 skips that test (a fixture constructor cannot skip).</summary>
public sealed class VulkanFixture : IDisposable
{
    private VulkanBackend? _backend;
    public VulkanBackend Backend => _backend ??= VulkanTestDevice.Open();
    public void Dispose() => _backend?.Dispose();
}

/// <summary>
/// The Vulkan backend's infrastructure and first ops, on whatever device is chosen (lavapipe in CI) with validation on:
/// device creation, transfers (slices at odd offsets), each implemented op against the CPU Reference's definitions on
/// sizes 1, 7 and 1000003, hazard tracking across batches, kill switches, and the validation messenger itself.
/// </summary>
public class VulkanSmokeTests(VulkanFixture fixture) : IClassFixture<VulkanFixture>
{
    private static readonly CpuBackend Cpu = new(fastPaths: false);
    public static readonly TheoryData<int> Sizes = new() { 1, 7, 1000003 };

    // ---- device and memory ---------------------------------------------------------------------------------------

    [SkippableFact]
    public void DeviceIsCreatedWithValidationAndReportsItsLimits()
    {
        var vk = fixture.Backend;
        var info = vk.Info;
        Assert.True(info.ValidationEnabled);
        Assert.True(info.ApiVersion >= new Version(1, 2));
        Assert.True(info.MaxComputeWorkGroupInvocations >= 128 && info.MaxStorageBufferRange >= 1UL << 27);
        Assert.Contains(info.Name, info.ToString());
        Assert.True(vk.LinearWorkgroupSize is >= 32 and <= 256 && (vk.LinearWorkgroupSize & (vk.LinearWorkgroupSize - 1)) == 0);
        foreach (var shader in new[] { "fill", "add", "accumulate", "scale", "gelu", "gelu_back", "sum_of_squares.SUBGROUPS", "sum_of_squares.NO_SUBGROUPS" })
            Assert.Contains(shader, VulkanBackend.EmbeddedShaders);
        Console.WriteLine(info);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void UploadDownloadRoundTripsWholeTensorsAndOddSlices()
    {
        var vk = fixture.Backend;
        var data = Random(1001, 1);
        var t = PutWhole(vk, data);
        Assert.Equal(data, Get(vk, t));

        var slice = t.Slice(3, [7, 11]);             // 12-byte offset: below any storage-buffer alignment
        var patch = Random(77, 2);
        vk.Upload<float>(patch, slice);
        Assert.Equal(patch, Get(vk, slice));
        var whole = Get(vk, t);
        Array.Copy(patch, 0, data, 3, 77);
        Assert.Equal(data, whole);                     // nothing outside the slice was touched

        var ids = vk.Allocate(DType.I32, [13], "ids");
        int[] values = Enumerable.Range(-6, 13).ToArray();
        vk.Upload<int>(values, ids);
        var back = new int[5];
        vk.Download<int>(ids.Slice(5, [5]), back);
        Assert.Equal(values[5..10], back);
        Assert.Throws<ArgumentException>(() => vk.Upload<float>(new float[13], ids));
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void AllocationsAreZeroedAlsoWhenMemoryIsReused()
    {
        var vk = fixture.Backend;
        var a = PutWhole(vk, Random(4099, 3));
        vk.Release(a);
        var b = vk.Allocate(DType.F32, [4099]);
        Assert.All(Get(vk, b), x => Assert.Equal(0f, x));
        Assert.Throws<ObjectDisposedException>(() => Get(vk, a));
        var f64 = Assert.Throws<NotSupportedException>(() => vk.Allocate(DType.F64, [3], "doubles"));
        Assert.Contains("doubles", f64.Message);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void FreedNeighboursCoalesceAndTheirRangeIsReused()
    {
        var vk = fixture.Backend;
        vk.Synchronize();
        Tensor a = vk.Allocate(DType.F32, [1000]), b = vk.Allocate(DType.F32, [3000]), c = vk.Allocate(DType.F32, [10]);
        var first = (VulkanBuffer)a.Storage;
        ulong live = vk.BytesAllocated;
        vk.Release(b);
        vk.Release(a);                               // merges with b's free range
        Assert.Equal(live - ((VulkanBuffer)a.Storage).ByteSize - ((VulkanBuffer)b.Storage).ByteSize, vk.BytesAllocated);
        var d = vk.Allocate(DType.F32, [3900]);      // fits only in a ∪ b
        Assert.Equal(first.ByteOffset, ((VulkanBuffer)d.Storage).ByteOffset);
        vk.Release(c);
        vk.Release(d);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void DeviceIndexOverrideIsHonouredAndChecked()
    {
        Skip.If(VulkanTestDevice.Skipped, VulkanTestDevice.SkipReason);
        var env = VulkanOptions.FromEnvironment();
        using (var first = VulkanTestDevice.Open(env with { Validation = true, DeviceIndex = 0 })!)
            Assert.Equal(0, first.Info.Index);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new VulkanBackend(env with { DeviceIndex = 99 }));
        Assert.Contains("devices: 0:", error.Message);
    }

    // ---- ops against the Reference -------------------------------------------------------------------------------

    [SkippableTheory, MemberData(nameof(Sizes))]
    public void FillAndCopyMatchTheReference(int n)
    {
        var vk = fixture.Backend;
        var t = vk.Allocate(DType.F32, [n + 5]);
        var view = t.Slice(5, [n]);
        vk.Fill(view, -1.25);
        var expected = new float[n + 5];
        Array.Fill(expected, -1.25f, 5, n);
        Assert.Equal(expected, Get(vk, t));

        var ids = vk.Allocate(DType.I32, [n]);
        vk.Fill(ids, -7);
        var got = new int[n];
        vk.Download<int>(ids, got);
        Assert.All(got, x => Assert.Equal(-7, x));

        var source = PutWhole(vk, Random(n, 4));
        var target = vk.Allocate(DType.F32, [n + 2]);
        vk.Copy(source, target.Slice(1, [n]));
        Assert.Equal(Get(vk, source), Get(vk, target)[1..^1]);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableTheory, MemberData(nameof(Sizes))]
    public void AddAccumulateScaleMatchTheReference(int n)
    {
        var vk = fixture.Backend;
        float[] a = Random(n, 5), b = Random(n, 6);
        Tensor ga = PutWhole(vk, a), gb = PutWhole(vk, b), gOut = vk.Allocate(DType.F32, [n]);
        Tensor ca = PutWhole(Cpu, a), cb = PutWhole(Cpu, b), cOut = Cpu.Allocate(DType.F32, [n]);
        foreach (IBackend backend in new IBackend[] { vk, Cpu })
        {
            bool gpu = backend == vk;
            backend.Add(gpu ? ga : ca, gpu ? gb : cb, gpu ? gOut : cOut);
            backend.Accumulate(gpu ? ga : ca, gpu ? gOut : cOut);   // out = 2a + b
            backend.Scale(gpu ? gOut : cOut, -0.5f);                  // out = −a − b/2
        }
        AssertClose(Get(Cpu, cOut), Get(vk, gOut), 1e-12, "add/accumulate/scale");
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableTheory, MemberData(nameof(Sizes))]
    public void GeluForwardAndBackwardMatchTheReference(int n)
    {
        var vk = fixture.Backend;
        float[] x = Random(n, 7, 6), dy = Random(n, 8), dx0 = Random(n, 9);
        x[0] = n > 1 ? 40f : x[0];                   // far in the tail: tanh must not turn into NaN
        Tensor gx = PutWhole(vk, x), gy = vk.Allocate(DType.F32, [n]), gdy = PutWhole(vk, dy), gdx = PutWhole(vk, dx0);
        Tensor cx = PutWhole(Cpu, x), cy = Cpu.Allocate(DType.F32, [n]), cdy = PutWhole(Cpu, dy), cdx = PutWhole(Cpu, dx0);
        vk.Gelu(gx, gy);
        vk.GeluBackward(gdy, gx, gdx);               // accumulates onto dx0
        Cpu.Gelu(cx, cy);
        Cpu.GeluBackward(cdy, cx, cdx);
        AssertClose(Get(Cpu, cy), Get(vk, gy), 1e-10, "gelu");
        AssertClose(Get(Cpu, cdx), Get(vk, gdx), 1e-10, "gelu backward");
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableTheory, MemberData(nameof(Sizes))]
    public void SwishForwardAndBackwardMatchTheReference(int n)
    {
        var vk = fixture.Backend;
        const float beta = 8f;
        float[] x = Random(n, 7, 6), dy = Random(n, 8), dx0 = Random(n, 9);
        if (n > 1) (x[0], x[1]) = (-40f, 40f);       // βx = ∓320: e^−z must not overflow into inf/inf = NaN
        Tensor gx = PutWhole(vk, x), gy = vk.Allocate(DType.F32, [n]), gdy = PutWhole(vk, dy), gdx = PutWhole(vk, dx0);
        Tensor cx = PutWhole(Cpu, x), cy = Cpu.Allocate(DType.F32, [n]), cdy = PutWhole(Cpu, dy), cdx = PutWhole(Cpu, dx0);
        vk.Swish(gx, gy, beta);
        vk.SwishBackward(gdy, gx, gdx, beta);        // accumulates onto dx0
        Cpu.Swish(cx, cy, beta);
        Cpu.SwishBackward(cdy, cx, cdx, beta);
        AssertClose(Get(Cpu, cy), Get(vk, gy), 1e-10, "swish");
        AssertClose(Get(Cpu, cdx), Get(vk, gdx), 1e-10, "swish backward");
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableTheory, MemberData(nameof(Sizes))]
    public void ReluAndGeluExactForwardAndBackwardMatchTheReference(int n)
    {
        var vk = fixture.Backend;
        float[] x = Random(n, 7, 6), dy = Random(n, 8), dx0 = Random(n, 9);
        if (n > 1) (x[0], x[1]) = (-40f, 40f);       // far in both tails: erfc must give 0 and 2, not NaN
        if (n > 2) x[2] = 0f;                        // ReLU's gradient at the kink is 0
        foreach (var (forward, backward, name) in new (Action<IBackend, Tensor, Tensor>, Action<IBackend, Tensor, Tensor, Tensor>, string)[]
            {
                ((b, i, o) => b.Relu(i, o), (b, d, i, g) => b.ReluBackward(d, i, g), "relu"),
                ((b, i, o) => b.GeluExact(i, o), (b, d, i, g) => b.GeluExactBackward(d, i, g), "gelu exact"),
            })
        {
            Tensor gx = PutWhole(vk, x), gy = vk.Allocate(DType.F32, [n]), gdy = PutWhole(vk, dy), gdx = PutWhole(vk, dx0);
            Tensor cx = PutWhole(Cpu, x), cy = Cpu.Allocate(DType.F32, [n]), cdy = PutWhole(Cpu, dy), cdx = PutWhole(Cpu, dx0);
            forward(vk, gx, gy);
            backward(vk, gdy, gx, gdx);              // accumulates onto dx0
            forward(Cpu, cx, cy);
            backward(Cpu, cdy, cx, cdx);
            AssertClose(Get(Cpu, cy), Get(vk, gy), 1e-10, name);
            AssertClose(Get(Cpu, cdx), Get(vk, gdx), 1e-10, name + " backward");
        }
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableTheory, MemberData(nameof(Sizes))]
    public void MultiplyForwardAndBackwardMatchTheReference(int n)
    {
        var vk = fixture.Backend;
        float[] a = Random(n, 7, 3), b = Random(n, 8), dy = Random(n, 9), da0 = Random(n, 10), db0 = Random(n, 11);
        Tensor ga = PutWhole(vk, a), gb = PutWhole(vk, b), gy = vk.Allocate(DType.F32, [n]), gdy = PutWhole(vk, dy);
        Tensor ca = PutWhole(Cpu, a), cb = PutWhole(Cpu, b), cy = Cpu.Allocate(DType.F32, [n]), cdy = PutWhole(Cpu, dy);
        Tensor gda = PutWhole(vk, da0), gdb = PutWhole(vk, db0), cda = PutWhole(Cpu, da0), cdb = PutWhole(Cpu, db0);
        vk.Multiply(ga, gb, gy);
        vk.MultiplyBackward(gdy, ga, gb, gda, null); // dB not wanted: left alone
        vk.MultiplyBackward(gdy, ga, gb, null, gdb);
        Cpu.Multiply(ca, cb, cy);
        Cpu.MultiplyBackward(cdy, ca, cb, cda, cdb);
        AssertClose(Get(Cpu, cy), Get(vk, gy), 1e-10, "multiply");
        AssertClose(Get(Cpu, cda), Get(vk, gda), 1e-10, "multiply backward dA");
        AssertClose(Get(Cpu, cdb), Get(vk, gdb), 1e-10, "multiply backward dB");
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableTheory, MemberData(nameof(Sizes))]
    public void SumOfSquaresMatchesTheReference(int n)
    {
        var vk = fixture.Backend;
        var x = Random(n, 10, 3);
        double expected = Cpu.SumOfSquares(PutWhole(Cpu, x));
        double got = vk.SumOfSquares(PutWhole(vk, x).Slice(0, [n]));
        Assert.True(Math.Abs(got - expected) <= 1e-5 * expected, $"sum of squares {got} vs {expected}");
        VulkanTestDevice.AssertClean(vk);
    }

    // ---- execution -----------------------------------------------------------------------------------------------

    [SkippableFact]
    public void BarriersOnlyWhereNeededAndDependentChainsAcrossBatchesAreOrdered()
    {
        var vk = fixture.Backend;
        Tensor a = vk.Allocate(DType.F32, [1000]), b = vk.Allocate(DType.F32, [1000]), c = vk.Allocate(DType.F32, [1000]);
        vk.Fill(a, 1);                               // after a's zero-fill: one barrier
        long before = vk.Barriers;
        vk.Fill(b, 2);                               // independent of a: none
        Assert.Equal(before, vk.Barriers);
        vk.Add(a, b, c);                             // reads a and b just written: one
        Assert.Equal(before + 1, vk.Barriers);

        long submits = vk.Submits;
        for (int i = 0; i < 600; i++) vk.Accumulate(a, c);   // each waits for the previous (write after write)
        Assert.True(vk.Submits >= submits + 2, "600 dispatches span more than one batch");
        Assert.All(Get(vk, c), v => Assert.Equal(603f, v));
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void KillSwitchesGiveWorkingBackendsAndThePipelineCacheIsSaved()
    {
        Skip.If(VulkanTestDevice.Skipped, VulkanTestDevice.SkipReason);
        string cache = Path.Combine(Path.GetTempPath(), "llm-vulkan-cache-" + Guid.NewGuid().ToString("N"));
        var options = VulkanOptions.FromEnvironment() with { Validation = true, DisableFp16 = true, DisableSubgroups = true, CacheDirectory = cache };
        var x = Random(4097, 11);
        double expected = Cpu.SumOfSquares(PutWhole(Cpu, x));
        using (var plain = VulkanTestDevice.Open(options)!)
        {
            Assert.False(plain.Info.Fp16Enabled);
            Assert.False(plain.Info.SubgroupsEnabled);
            Assert.Equal(expected, plain.SumOfSquares(PutWhole(plain, x)), expected * 1e-5);
            VulkanTestDevice.AssertClean(plain);
        }
        Assert.NotEmpty(Directory.GetFiles(cache, "vulkan-pipelines-*.bin"));
        using (var full = VulkanTestDevice.Open(options with { DisableFp16 = false, DisableSubgroups = false })!)
        {
            Assert.Equal(full.Info.Fp16Supported, full.Info.Fp16Enabled);
            Assert.Equal(full.Info.SubgroupArithmeticSupported, full.Info.SubgroupsEnabled);
            Assert.Equal(expected, full.SumOfSquares(PutWhole(full, x)), expected * 1e-5);
            VulkanTestDevice.AssertClean(full);
        }
        Directory.Delete(cache, recursive: true);
    }

    /// <summary>The messenger works: an invalid (but harmless) call is reported. Fence flags 0x80 is not a valid bit.</summary>
    [SkippableFact]
    public unsafe void TheValidationMessengerReportsMisuse()
    {
        var vk = fixture.Backend;
        VulkanTestDevice.AssertClean(vk);
        var context = vk.Context;
        var info = new FenceCreateInfo { SType = StructureType.FenceCreateInfo, Flags = (FenceCreateFlags)0x80 };
        Fence fence;
        context.Vk.CreateFence(context.Device, &info, null, &fence);
        context.Vk.DestroyFence(context.Device, fence, null);
        var messages = vk.TakeValidationMessages();
        Assert.Contains(messages, m => m.Contains("VkFenceCreateInfo"));
    }

    [SkippableFact]
    public void OneDimensionalOpsSplitTensorsBeyondMaxStorageBufferRange()
    {
        // lavapipe binds at most 128 MiB, a GPU usually 4 GiB (too much to allocate in a test): 256 KiB here
        const ulong binding = 256 << 10;
        using var vk = VulkanTestDevice.OpenWithLimits(maxBindingBytes: binding);
        int n = (int)(binding / 4) + 1000;
        var big = vk.Allocate(DType.F32, [n], "big");
        var other = vk.Allocate(DType.F32, [n], "other");
        vk.Fill(big, 1);
        vk.Scale(big, 2);                 // 2 everywhere, the tail included
        vk.Fill(other, 0.5);
        vk.Accumulate(other, big);        // 2.5
        Assert.Equal(6.25 * n, vk.SumOfSquares(big), 6);
        var tail = new float[1000];
        vk.Download<float>(big.Slice(n - 1000, [1000]), tail);
        Assert.All(tail, x => Assert.Equal(2.5f, x));
        vk.Release(big);
        vk.Release(other);
        VulkanTestDevice.AssertClean(vk);
    }
}
