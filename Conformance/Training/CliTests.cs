using System.Text.Json;
using Llm.Tools;
using Xunit;
using static Llm.Conformance.Training.CliRun;

namespace Llm.Conformance.Training;

/// <summary>The command line end to end: train writes a checkpoint that sample and eval read; bad input is one line.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-cli-" + Guid.NewGuid().ToString("N")[..8]);

    public CliTests() => Directory.CreateDirectory(_dir);
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    [Fact]
    public void TrainThenSampleThenEval()
    {
        string run = Path.Combine(_dir, "run");
        var train = Run("train", "--preset", "micro", "--steps", "4", "--batch", "2", "--seq", "16", "--eval-every", "2",
            "--eval-batches", "2", "--checkpoint-every", "2", "--out", run);
        Assert.True(train.Code == 0, train.Err + train.Out);
        Assert.True(File.Exists(Path.Combine(run, "step_000004", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(run, "step_000004", "config.json")));
        Assert.True(File.Exists(Path.Combine(run, "loss.png")));
        Assert.Equal("step_000004", File.ReadAllText(Path.Combine(run, "latest")).Trim());

        var sample = Run("sample", "--checkpoint", run, "--prompt", "It is", "--tokens", "10", "--seed", "3");
        Assert.True(sample.Code == 0, sample.Err);
        Assert.StartsWith("It is", sample.Out);
        var again = Run("sample", "--checkpoint", run, "--prompt", "It is", "--tokens", "10", "--seed", "3");
        Assert.Equal(sample.Out, again.Out);

        string text = Path.Combine(_dir, "text.txt");
        File.WriteAllText(text, "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.");
        var eval = Run("eval", "--checkpoint", run, "--data", text, "--json");
        Assert.True(eval.Code == 0, eval.Err);
        var json = JsonDocument.Parse(eval.Out).RootElement;
        double loss = json.GetProperty("loss").GetDouble();
        Assert.InRange(loss, 0.5, 10);
        Assert.Equal(Math.Exp(loss), json.GetProperty("perplexity").GetDouble(), 6);
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(File.ReadAllText(text)) - 1, json.GetProperty("tokens").GetInt64());

        var resumed = Run("train", "--resume", run, "--steps", "6");
        Assert.True(resumed.Code == 0, resumed.Err + resumed.Out);
        Assert.Equal("step_000006", File.ReadAllText(Path.Combine(run, "latest")).Trim());
    }

    [SkippableFact]
    public void TrainAndSampleOnVulkan()
    {
        Skip.If(Vulkan.VulkanTestDevice.Skipped, Vulkan.VulkanTestDevice.SkipReason);
        string run = Path.Combine(_dir, "vk");
        var train = Run("train", "--backend", "vulkan", "--preset", "micro", "--steps", "3", "--batch", "2", "--seq", "16",
            "--eval-every", "3", "--eval-batches", "1", "--out", run);
        Assert.True(train.Code == 0, train.Err + train.Out);
        Assert.Contains("backend: vulkan on ", train.Out);
        var sample = Run("sample", "--backend", "vulkan", "--checkpoint", run, "--prompt", "Mr. Darcy", "--tokens", "5", "--temperature", "0");
        Assert.True(sample.Code == 0, sample.Err);
        var cpu = Run("sample", "--backend", "cpu", "--checkpoint", run, "--prompt", "Mr. Darcy", "--tokens", "5", "--temperature", "0");
        Assert.Equal(cpu.Out, sample.Out);  // greedy decoding agrees across backends on this small model
        var bad = Run("train", "--backend", "metal");
        Assert.NotEqual(0, bad.Code);
        AssertOneLineError(bad, "metal");
    }

    [Theory]
    [InlineData("--steps", "abc")]
    [InlineData("--preset", "huge")]
    [InlineData("--tokenizer", "morse")]
    [InlineData("--steps", "0")]
    [InlineData("--seq", "100000")]
    [InlineData("--data", "/nonexistent/corpus.txt")]
    [InlineData("--no-such-option", "1")]
    public void BadTrainOptionsFailWithOneLine(string option, string value)
    {
        var r = Run("train", option, value, "--out", Path.Combine(_dir, "bad"));
        Assert.NotEqual(0, r.Code);
        AssertOneLineError(r, r.Err.Contains(value) ? value : option);
    }

    [Fact]
    public void MissingOrCorruptCheckpointFailsWithOneLine()
    {
        var missing = Run("sample", "--checkpoint", Path.Combine(_dir, "nothing-here"));
        Assert.NotEqual(0, missing.Code);
        AssertOneLineError(missing, "nothing-here");

        string corrupt = Path.Combine(_dir, "corrupt");
        Directory.CreateDirectory(corrupt);
        File.WriteAllText(Path.Combine(corrupt, "config.json"), """{"model_type":"gpt2","vocab_size":256,"n_positions":16,"n_embd":16,"n_layer":2,"n_head":2}""");
        File.WriteAllBytes(Path.Combine(corrupt, "model.safetensors"), [1, 2, 3]);
        var bad = Run("eval", "--checkpoint", corrupt, "--data", Path.Combine(corrupt, "config.json"));
        Assert.NotEqual(0, bad.Code);
        AssertOneLineError(bad, "model.safetensors");
    }
}
