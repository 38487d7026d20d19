using Llm.Cpu;
using Llm.Models;
using Llm.Tensors;
using Llm.Training;
using Llm.Vulkan;
using Xunit;

using static Llm.Conformance.Vulkan.VulkanTestData;

namespace Llm.Conformance.Vulkan;

/// <summary>
/// What a training step costs on Vulkan beyond its matmuls: the column sums are two-level and still bit-reproducible,
/// the embedding gradient is bucketed by id and still the CPU's bit for bit, AdamW is one dispatch per arena and decay
/// group, work is submitted before the first download and uploads do not wait, and the host splits work to the loop
/// budget (here forced small, so that the split paths run on every device).
/// </summary>
public class VulkanStepTests(VulkanFixture fixture) : IClassFixture<VulkanFixture>
{
    private static readonly CpuBackend Cpu = new(fastPaths: false);

    /// <summary>LayerNorm dWeight/dBias, matmul dBias and the embedding gradient at N = 5000 rows with ids repeated
    /// ~700 times each: identical bits on a second run, the embedding gradient identical to the CPU's, the sums close
    /// to it; and the same with a 300-iteration loop budget (many row blocks, passes and ordered dispatches).</summary>
    [SkippableTheory]
    [InlineData(null)]
    [InlineData(300L)]
    public void ColumnSumsAreBitIdenticalRunToRunAtManyRows(long? loopBudget)
    {
        using var small = loopBudget is null ? null : VulkanTestDevice.OpenWithLimits(loopIterationBudget: loopBudget);
        var vk = small ?? fixture.Backend;
        const int n = 5000, c = 48, vocab = 7;
        int[] ids = Enumerable.Range(0, n).Select(i => (int)((long)i * i % vocab)).ToArray();
        float[] x = Random(n * c, 41, 1, 2), dy = Random(n * c, 42), w = Random(c, 43), dTable0 = Random(vocab * c, 44);
        float[][] Run(IBackend be)
        {
            Tensor input = Put(be, x, n, c), dOutput = Put(be, dy, n, c), weight = Put(be, w);
            Tensor mean = be.Allocate(DType.F32, [n]), rstd = be.Allocate(DType.F32, [n]);
            be.LayerNorm(input, weight, Put(be, w), be.Allocate(DType.F32, [n, c]), mean, rstd);
            Tensor dx = be.Allocate(DType.F32, [n, c]), dw = Put(be, w), db = Put(be, w), dBias = Put(be, w);
            be.LayerNormBackward(dOutput, input, weight, mean, rstd, dx, dw, db);
            be.MatMulBackward(dOutput, input, Put(be, Random(c * c, 45), c, c), null, null, dBias);
            Tensor dTable = Put(be, dTable0, vocab, c);
            be.EmbeddingBackward(dOutput, PutIds(be, ids), dTable);
            return [Get(be, dw), Get(be, db), Get(be, dBias), Get(be, dTable)];
        }
        var first = Run(vk);
        var second = Run(vk);
        var cpu = Run(Cpu);
        string[] names = ["layernorm dWeight", "layernorm dBias", "matmul dBias", "embedding dTable"];
        for (int i = 0; i < names.Length; i++) Assert.True(first[i].AsSpan().SequenceEqual(second[i]), $"{names[i]} differs between runs");
        Assert.Equal(cpu[3], first[3]);
        for (int i = 0; i < 3; i++) AssertClose(cpu[i], first[i], 1e-10, names[i]);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>One AdamW update of a whole GPT-2 (the tiny one: one arena, matrices and the rest) is one dispatch per
    /// arena and decay group, and moves no bytes.</summary>
    [SkippableFact]
    public void AdamWIsOneDispatchPerArenaAndDecayGroup()
    {
        var vk = fixture.Backend;
        var model = new Decoder(vk, DecoderConfig.Tiny);
        model.InitializeWeights(7);
        var adam = new AdamW(model.Parameters);
        int groups = model.Parameters.Arenas.Sum(a => model.Parameters.All.Where(p => p.Arena == a.Index).Select(p => p.Decay).Distinct().Count());
        var before = vk.Counters;
        adam.Update(1e-3f);
        var step = vk.Counters - before;
        Assert.Equal(2, groups);
        Assert.Equal(groups, step.Dispatches);
        Assert.Equal(0, step.BytesUploaded + step.BytesDownloaded);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>With the queue idle, recorded work is submitted every EarlySubmitDispatches dispatches, before any
    /// download; uploads are recorded without a submit (each batch stages its own), also when they exceed one batch's
    /// staging buffer, and arrive intact.</summary>
    [SkippableFact]
    public void WorkIsSubmittedEarlyAndUploadsDoNotWait()
    {
        using var vk = VulkanTestDevice.Open();
        var t = vk.Allocate(DType.F32, [1000]);
        var before = vk.Counters;
        for (int i = 0; i < 2 * CommandRecorder.EarlySubmitDispatches; i++) vk.Fill(t, i);
        Assert.True((vk.Counters - before).Submits >= 1, "nothing submitted before the first download");
        vk.Synchronize();

        before = vk.Counters;
        var small = Enumerable.Range(0, 10).Select(i => Random(1000, 50 + i)).ToArray();
        var tensors = small.Select(d => { var u = vk.Allocate(DType.F32, [d.Length]); vk.Upload<float>(d, u); return u; }).ToArray();
        Assert.Equal(0, (vk.Counters - before).Submits);
        int large = (int)(CommandRecorder.MaxUploadBytes / 4) * 5 / 2;   // 2.5 staging buffers
        var big = Random(large, 60);
        var bigTensor = vk.Allocate(DType.F32, [large]);
        vk.Upload<float>(big, bigTensor);
        Assert.InRange((vk.Counters - before).Submits, 1, 3);             // one per full staging buffer
        for (int i = 0; i < small.Length; i++) Assert.Equal(small[i], Get(vk, tensors[i]));
        Assert.True(big.AsSpan().SequenceEqual(Get(vk, bigTensor)), "large upload corrupted");
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>Synchronization validation is on: a write recorded behind the hazard tracking's back (so without its
    /// barrier) right after a dispatch that wrote the same bytes is reported as a hazard.</summary>
    [SkippableFact]
    public unsafe void SynchronizationValidationReportsAMissingBarrier()
    {
        using var vk = VulkanTestDevice.Open();
        var t = vk.Allocate(DType.F32, [1000]);
        VulkanTestDevice.AssertClean(vk);
        vk.Fill(t, 1);
        var buffer = vk.Buffer(t);
        vk.Context.Vk.CmdFillBuffer(vk.Recorder.Commands, buffer.Block.Buffer, buffer.ByteOffset, buffer.ByteSize, 0);
        vk.Synchronize();
        var messages = vk.TakeValidationMessages();
        Assert.Contains(messages, m => m.Contains("SYNC-HAZARD-WRITE-AFTER-WRITE"));
    }

    [SkippableFact]
    public void CountersSubtractAndPrint()
    {
        var a = new VulkanCounters(10, 4, 2, 100, 50);
        var b = new VulkanCounters(3, 1, 1, 40, 50);
        Assert.Equal(new VulkanCounters(7, 3, 1, 60, 0), a - b);
        Assert.Equal("7 dispatches, 3 barriers, 1 submits, 60 B up, 0 B down", (a - b).ToString());
    }

    /// <summary>The quirks are keyed on the driver: lavapipe's loop cap and tiling preference, nothing elsewhere, and
    /// the options' overrides only ever lower the limits.</summary>
    [SkippableFact]
    public void QuirksAreKeyedOnTheDriverId()
    {
        var vk = fixture.Backend;
        var lavapipe = DeviceQuirks.For(Silk.NET.Vulkan.DriverId.MesaLlvmpipe);
        Assert.Equal(65535, lavapipe.LoopIterationBudget);
        Assert.True(lavapipe.FewWideInvocations);
        var gpu = DeviceQuirks.For(Silk.NET.Vulkan.DriverId.NvidiaProprietary);
        Assert.Equal(long.MaxValue, gpu.LoopIterationBudget);
        Assert.False(gpu.FewWideInvocations);
        Assert.Equal(DeviceQuirks.For(vk.Info.DriverId).LoopIterationBudget, vk.Limits.LoopIterationBudget);
        Assert.Equal(vk.Info.MaxStorageBufferRange, vk.Limits.BindingRange);
        var forced = DispatchLimits.Of(vk.Info, new VulkanOptions { MaxBindingBytes = 4096, LoopIterationBudget = 1000 });
        Assert.Equal(4096UL, forced.TensorBytes);
        Assert.Equal(Math.Min(1000, DeviceQuirks.For(vk.Info.DriverId).LoopIterationBudget), forced.LoopIterationBudget);
    }
}
