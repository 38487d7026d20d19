using Llm.Common;
using Llm.Cpu;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Vulkan;

/// <summary>MoE routing on Vulkan with a loop budget small enough that the position scan runs in many tiles of tokens:
/// the counts carried from tile to tile must give the CPU's positions exactly.</summary>
public sealed class VulkanMoeTests
{
    [SkippableTheory]
    [InlineData(1, 1.0)]
    [InlineData(2, 0.5)]
    public void Routing_in_tiles_gives_the_cpus_slots(int k, double factor)
    {
        // budget 256: 192 planned iterations, so one expert invocation scans 176 tokens per dispatch: 1000 tokens take 6 tiles per choice
        using var vk = VulkanTestDevice.OpenWithLimits(loopIterationBudget: 256);
        const int N = 1000, E = 8;
        int capacity = (int)Math.Ceiling(k * N * factor / E);
        var rng = new Rng(17);
        var logits = new float[N * E];
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)(2 * rng.NextGaussian());
        (int[] Experts, int[] Slots, float[] Gates, float[] Load) Route(IBackend b)
        {
            var x = b.Allocate(DType.F32, [N, E]);
            b.Upload<float>(logits, x);
            var probs = b.Allocate(DType.F32, [N, E]);
            b.Softmax(x, probs, b.Allocate(DType.F32, [N]));
            var experts = b.Allocate(DType.I32, [N, k]);
            var slots = b.Allocate(DType.I32, [N, k]);
            var gates = b.Allocate(DType.F32, [N, k]);
            var load = b.Allocate(DType.F32, [E]);
            b.MoeRoute(probs, capacity, k > 1, experts, slots, gates, load);
            var r = (new int[N * k], new int[N * k], new float[N * k], new float[E]);
            b.Download<int>(experts, r.Item1);
            b.Download<int>(slots, r.Item2);
            b.Download<float>(gates, r.Item3);
            b.Download<float>(load, r.Item4);
            return r;
        }
        var cpu = Route(new CpuBackend());
        var gpu = Route(vk);
        VulkanTestDevice.AssertClean(vk);
        Assert.Equal(cpu.Experts, gpu.Experts);
        Assert.Equal(cpu.Slots, gpu.Slots);
        Assert.Contains(-1, cpu.Slots);   // the capacity drops some: the counts matter
        for (int i = 0; i < cpu.Gates.Length; i++) Assert.True(Math.Abs(cpu.Gates[i] - gpu.Gates[i]) <= 1e-6f, $"gate {i}: {gpu.Gates[i]} vs {cpu.Gates[i]}");
        for (int e = 0; e < E; e++) Assert.True(Math.Abs(cpu.Load[e] - gpu.Load[e]) <= 1e-7f, $"load {e}: {gpu.Load[e]} vs {cpu.Load[e]}");
    }

    /// <summary>Two forward+backward passes of gshard-micro (top-2, normalized gates) on Vulkan from the same weights
    /// give bit-identical losses and gradients: no atomics, fixed reduction orders.</summary>
    [SkippableFact]
    public void Moe_steps_on_vulkan_are_bit_identical()
    {
        using var vk = VulkanTestDevice.Open();
        float[] Run()
        {
            var model = new Models.Decoder(vk, Models.DecoderConfig.FromPreset("gshard-micro"));
            model.InitializeWeights(3);
            using var tape = new Autograd.Tape(vk);
            var ids = tape.Ids(Enumerable.Range(0, 32).Select(i => i * 7 % 256).ToArray(), [2, 16]);
            var losses = tape.CrossEntropy(model.Forward(tape, ids), ids);
            var d = vk.Allocate(DType.F32, [32]);
            vk.Fill(d, 1);
            model.Parameters.ZeroGrad();
            tape.Backward(losses, d);
            var l = new float[32];
            vk.Download<float>(losses.Value, l);
            var grads = model.Parameters.All.SelectMany(p => { var g = new float[p.Grad!.Length]; vk.Download<float>(p.Grad!, g); return g; });
            return [.. l, .. grads];
        }
        var first = Run();
        Assert.Equal(first, Run());
        VulkanTestDevice.AssertClean(vk);
    }
}
