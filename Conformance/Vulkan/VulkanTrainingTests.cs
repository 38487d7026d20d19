using Llm.Checks;
using Llm.Conformance.Harness;
using Llm.Cpu;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;
using Llm.Training;
using Xunit;

namespace Llm.Conformance.Vulkan;

/// <summary>End to end: the tiny GPT-2 trained on Vulkan follows the Reference's loss curve and lands on its weights.</summary>
public sealed class VulkanTrainingTests
{
    [SkippableFact]
    public void TwentyStepsOfTinyGpt2MatchTheReference()
    {
        using var vk = VulkanTestDevice.Open();
        const int B = 4, T = 64, Steps = 20;
        var tokens = new ByteTokenizer().Encode(Corpus.PrideAndPrejudice[..20_000]);
        var data = new TokenDataset(tokens, B, T, validationFraction: 0.1);
        var batches = Enumerable.Range(0, Steps).Select(_ => data.NextTrainBatch()).ToList();

        (List<double> Losses, float[] Weights) Train(IBackend backend)
        {
            var model = new Decoder(backend, DecoderConfig.Tiny);
            model.InitializeWeights(42);
            var trainer = new Trainer(model, new OptimizerOptions { WarmupSteps = 5 }, Steps);
            var losses = batches.Select(b => trainer.Step([(b.Inputs, b.Targets)], B, T).Loss).ToList();
            var weights = model.Parameters.DownloadValues();
            return (losses, weights);
        }

        var reference = Train(new CpuBackend());
        var vulkan = Train(vk);
        VulkanTestDevice.AssertClean(vk);

        for (int s = 0; s < Steps; s++)
        {
            double relative = Math.Abs(vulkan.Losses[s] - reference.Losses[s]) / Math.Abs(reference.Losses[s]);
            Assert.True(relative < 1e-4, $"step {s + 1}: Vulkan loss {vulkan.Losses[s]:R} vs Reference {reference.Losses[s]:R} (relative {relative:E2} ≥ 1e-4)");
        }
        Assert.True(reference.Losses[^1] < reference.Losses[0] - 0.5, "the run should learn something in 20 steps");
        // Per element, AdamW normalizes each update to ≈ ±lr whatever the gradient's size, so an element whose gradient is
        // f32 noise may step differently on each side: the element bound is loose, NMSE holds the whole.
        var weightsTolerance = Tolerance.MatMul with { Element = 1e-2, Why = "20 AdamW steps: updates of ≈ lr per step, whatever the gradient's size" };
        Compare.Check(new CheckContext([]), "20 training steps", "vulkan", "weights", [vulkan.Weights.Length], vulkan.Weights.Select(x => (double)x).ToArray(),
            reference.Weights.Select(x => (double)x).ToArray(), weightsTolerance, "tiny GPT-2, B=4, T=64, seed 42");
    }

    public static Xunit.TheoryData<string> Presets() => ["llama-tiny", "bloom-tiny", "neox-tiny", "palm-tiny", "glm-tiny", "gpt2-tiny+dropout", "switch-tiny", "gshard-tiny"];

    /// <summary>Every preset's CPU-sized form (two of its four layers, to keep lavapipe quick) trains on Vulkan as on the
    /// Reference: the same losses to 1e-4 relative for 12 steps, and it learns.</summary>
    [SkippableTheory, MemberData(nameof(Presets))]
    public void EveryPresetTrainsOnVulkanAsOnTheReference(string preset)
    {
        using var vk = VulkanTestDevice.Open();
        const int B = 2, T = 32, Steps = 12;
        // +dropout: every dropout at 0.1; the same seed must drop the same elements on both backends
        var config = preset.EndsWith("+dropout")
            ? DecoderConfig.FromPreset(preset[..^"+dropout".Length]) with { Layers = 2, EmbeddingDropout = 0.1f, ResidualDropout = 0.1f, AttentionDropout = 0.1f }
            : DecoderConfig.FromPreset(preset) with { Layers = 2 };
        var tokens = new ByteTokenizer().Encode(Corpus.PrideAndPrejudice[..20_000]);
        var data = new TokenDataset(tokens, B, T, validationFraction: 0.1);
        var batches = Enumerable.Range(0, Steps).Select(_ => data.NextTrainBatch()).ToList();

        List<double> Train(IBackend backend)
        {
            var model = new Decoder(backend, config);
            model.InitializeWeights(42);
            var trainer = new Trainer(model, new OptimizerOptions { WarmupSteps = 3, LearningRate = 3e-3f }, Steps) { DropoutSeed = 77 };
            return [.. batches.Select(b => trainer.Step([(b.Inputs, b.Targets)], B, T).Loss)];
        }

        var reference = Train(new CpuBackend());
        var vulkan = Train(vk);
        VulkanTestDevice.AssertClean(vk);
        for (int s = 0; s < Steps; s++)
        {
            double relative = Math.Abs(vulkan[s] - reference[s]) / Math.Abs(reference[s]);
            Assert.True(relative < 1e-4, $"{preset} step {s + 1}: Vulkan loss {vulkan[s]:R} vs Reference {reference[s]:R} (relative {relative:E2} ≥ 1e-4)");
        }
        Assert.True(reference[^1] < reference[0] - 0.5, $"{preset} should learn something in {Steps} steps: {reference[0]:F3} → {reference[^1]:F3}");
    }
}
