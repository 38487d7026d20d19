using Llm.Cpu;
using Llm.Models;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Vulkan;

/// <summary>The encoder-decoder on Vulkan: training follows the Reference step by step, and the relative bias's backward
/// splits long position loops into passes within lavapipe's loop budget.</summary>
public sealed class VulkanEncoderDecoderTests
{
    public static TheoryData<string> Variants() => ["t5-micro", "gegelu-untied", "t5-micro+dropout"];

    /// <summary>10 steps of t5-micro, of its GEGLU (tanh) untied variant, and of it with every dropout at 0.1 (the same seed
    /// drops the same elements on both backends) agree with the Reference to 1e-4 relative per step, as the decoder presets
    /// do (VulkanTrainingTests), and learn (the mean loss of the last two steps ≥ 0.5 below the first two's: 1.0 to 7.4 seen).</summary>
    [SkippableTheory, MemberData(nameof(Variants))]
    public void TenStepsMatchTheReference(string variant)
    {
        using var vk = VulkanTestDevice.Open();
        var config = variant switch
        {
            "t5-micro" => EncoderDecoderConfig.T5Micro,
            "gegelu-untied" => EncoderDecoderConfig.T5Micro with { Activation = Activation.GeGluTanh, TiedEmbeddings = false },
            _ => EncoderDecoderConfig.T5Micro with { Dropout = 0.1f },
        };
        var reference = Model.EncoderDecoderTests.Train(new CpuBackend(), config);
        var vulkan = Model.EncoderDecoderTests.Train(vk, config);
        VulkanTestDevice.AssertClean(vk);
        for (int s = 0; s < reference.Count; s++)
        {
            double relative = Math.Abs(vulkan[s] - reference[s]) / Math.Abs(reference[s]);
            Assert.True(relative < 1e-4, $"step {s + 1}: Vulkan loss {vulkan[s]:R} vs Reference {reference[s]:R} (relative {relative:E2} ≥ 1e-4)");
        }
        Assert.True(Model.EncoderDecoderTests.Learned(reference, 0.5), $"{variant} should learn: {string.Join(", ", reference)}");
    }

    /// <summary>With a 256-iteration loop budget and 1 MiB bindings, P = 300² positions (360 KB a head plane) take several
    /// passes of the backward's loop and the 5 heads go two planes per dispatch: the gather still equals the CPU's exactly,
    /// and the sums to f32 rounding of ~P/NB-term sums (the Sum tolerance's 5e-5 of (|b| + √(P/NB))).</summary>
    [SkippableFact]
    public void RelativeBiasSplitsLongLoopsAndLargeOutputs()
    {
        using var vk = VulkanTestDevice.OpenWithLimits(maxBindingBytes: 1 << 20, loopIterationBudget: 256);
        var cpu = new CpuBackend();
        const int Tq = 300, Tk = 300, NB = 32, NH = 5;
        var buckets = EncoderDecoder.RelativeBuckets(Tq, Tk, 0, true, NB, 128);
        var rng = new Common.Rng(4);
        var table = Enumerable.Range(0, NB * NH).Select(_ => (float)rng.NextGaussian()).ToArray();
        var dOutput = Enumerable.Range(0, NH * Tq * Tk).Select(_ => (float)rng.NextGaussian()).ToArray();
        (float[] Output, float[] DTable) Run(IBackend b)
        {
            var ids = b.Allocate(DType.I32, [Tq, Tk]);
            b.Upload<int>(buckets, ids);
            var t = b.Allocate(DType.F32, [NB, NH]);
            b.Upload<float>(table, t);
            var output = b.Allocate(DType.F32, [NH, Tq, Tk]);
            b.RelativePositionBias(t, ids, output);
            var dy = b.Allocate(DType.F32, [NH, Tq, Tk]);
            b.Upload<float>(dOutput, dy);
            var dTable = b.Allocate(DType.F32, [NB, NH]);
            b.Fill(dTable, 1);
            b.RelativePositionBiasBackward(dy, ids, dTable);
            var (o, d) = (new float[output.Length], new float[NB * NH]);
            b.Download<float>(output, o);
            b.Download<float>(dTable, d);
            return (o, d);
        }
        var expected = Run(cpu);
        var actual = Run(vk);
        VulkanTestDevice.AssertClean(vk);
        Assert.Equal(expected.Output, actual.Output);
        double scale = Math.Sqrt((double)Tq * Tk / NB);
        for (int i = 0; i < expected.DTable.Length; i++)
            Assert.True(Math.Abs(actual.DTable[i] - expected.DTable[i]) <= 5e-5 * (Math.Abs(expected.DTable[i]) + scale),
                $"dTable[{i / NH}, {i % NH}]: {actual.DTable[i]} vs {expected.DTable[i]}");
    }
}
