using System.Text.Json;
using Xunit;
using static Llm.Conformance.Training.CliRun;

namespace Llm.Conformance.Training;

/// <summary>`bench --json` at tiny sizes: the machine's peaks, the fractions of them and the memory breakdown are there
/// and consistent with each other. Timings themselves are never asserted.</summary>
public sealed class BenchJsonTests
{
    [Fact]
    public void Bench_json_has_the_peaks_the_fractions_and_the_memory_breakdown()
    {
        var r = Run("bench", "--backend", "cpu", "--preset", "micro", "--batch", "1", "--seq", "8", "--steps", "1",
            "--matmul-size", "48", "--skip-naive", "--bandwidth-mib", "8", "--decode-prompt", "4", "--decode-tokens", "4",
            "--attention-seq", "16", "--attention-batch", "2", "--json");
        Assert.True(r.Code == 0, $"exit {r.Code}: {r.Err}");
        var llm = JsonDocument.Parse(Lines(r.Out)[^1]).RootElement.GetProperty("llm");
        double D(JsonElement e, string name) => e.GetProperty(name).GetDouble();

        var machine = llm.GetProperty("Machine");
        Assert.False(string.IsNullOrWhiteSpace(machine.GetProperty("Cpu").GetString()));
        Assert.Equal(Environment.ProcessorCount, machine.GetProperty("Cores").GetInt32());
        Assert.True(D(machine, "FmaGflops") > 0 && D(machine, "ReadGBps") > 0, $"peaks {D(machine, "FmaGflops")} GFLOP/s, {D(machine, "ReadGBps")} GB/s");
        Assert.Equal(8, machine.GetProperty("ReadBufferMiB").GetInt32());

        // fractions are the numbers over the peaks; the step's flops are 6·P·B·T
        Assert.Equal(D(llm, "FastGflops") / D(machine, "FmaGflops"), D(llm, "MatMulFractionOfPeak"), 9);
        long p = llm.GetProperty("Parameters").GetInt64();
        Assert.Equal(6.0 * p * 8 / (D(llm, "StepMs") / 1000) / 1e9, D(llm, "StepGflops"), 6);
        Assert.Equal(D(llm, "StepGflops") / D(machine, "FmaGflops"), D(llm, "StepFractionOfPeak"), 9);
        Assert.Equal(D(llm, "AdamWGBps") / D(machine, "ReadGBps"), D(llm, "AdamWFractionOfBandwidth"), 9);

        // the breakdown: parameters and gradients are 4·P bytes each, the logits' three [B, T, V] tensors are counted; which
        // phase holds the peak (and so what the pool holds then, if anything) depends on what else runs in this process: not asserted
        var mem = llm.GetProperty("Memory");
        Assert.Equal(4.0 * p / (1 << 20), D(mem, "ParametersMiB"), 6);
        Assert.Equal(D(mem, "ParametersMiB"), D(mem, "GradientsMiB"));
        Assert.Equal(2 * D(mem, "ParametersMiB"), D(mem, "AdamWMiB"), 6);
        Assert.Equal(3.0 * 8 * Models.DecoderConfig.FromPreset("micro").VocabSize * 4 / (1 << 20), D(mem, "LogitsMiB"), 9);
        Assert.Equal(D(mem, "ResidentMiB"), D(mem, "ManagedMiB") + D(mem, "NativeMiB"), 6);
        Assert.True(D(llm, "PeakMemoryMiB") >= D(mem, "ResidentMiB") - 1, "VmHWM is at least every sampled resident set");

        // decode: the preset follows --preset; tokens/s positive; the bandwidth limit is read bandwidth / 4·P (CPU backend)
        var decode = llm.GetProperty("Decode");
        Assert.Equal("micro", decode.GetProperty("Preset").GetString());
        Assert.Equal(p, decode.GetProperty("Parameters").GetInt64());
        Assert.Equal(4, decode.GetProperty("PromptTokens").GetInt32());
        Assert.Equal(4, decode.GetProperty("NewTokens").GetInt32());
        Assert.Equal(4 * p, decode.GetProperty("WeightBytesPerToken").GetInt64());
        Assert.True(D(decode, "CachedTokensPerSecond") > 0 && D(decode, "UncachedTokensPerSecond") > 0);
        Assert.True(D(decode, "CachedPrefillMs") > 0 && D(decode, "UncachedPrefillMs") > 0);
        Assert.Equal(D(machine, "ReadGBps") * 1e9 / (4.0 * p), D(decode, "BandwidthLimitTokensPerSecond"), 6);
        Assert.Equal(D(decode, "CachedTokensPerSecond") / D(decode, "BandwidthLimitTokensPerSecond"), D(decode, "CachedFractionOfLimit"), 9);
        Assert.Equal(D(decode, "UncachedTokensPerSecond") / D(decode, "BandwidthLimitTokensPerSecond"), D(decode, "UncachedFractionOfLimit"), 9);
        Assert.True(D(decode, "CachedFractionOfLimit") > 0 && double.IsFinite(D(decode, "CachedFractionOfLimit")));

        // attention: times positive; what it keeps is rowMax + rowSum [B, NH, T], against 4·B·NH·T² bytes of probabilities
        var att = llm.GetProperty("Attention");
        int B = att.GetProperty("Batch").GetInt32(), T = att.GetProperty("Seq").GetInt32(), NH = att.GetProperty("Heads").GetInt32(), hs = att.GetProperty("HeadSize").GetInt32();
        Assert.Equal((2, 16, 12, 64), (B, T, NH, hs));
        Assert.True(D(att, "ForwardMs") > 0 && D(att, "BackwardMs") > 0 && D(att, "Gflops") > 0);
        Assert.Equal(D(att, "ForwardMs") + D(att, "BackwardMs"), D(att, "TotalMs"), 9);
        Assert.Equal(2L * 4 * B * NH * T, att.GetProperty("SavedBytes").GetInt64());
        Assert.Equal(4L * B * NH * T * T, att.GetProperty("ProbsBytes").GetInt64());
        Assert.Equal(4L * (8L * B * T * NH * hs + 2L * B * NH * T), att.GetProperty("TensorBytes").GetInt64());
    }

    [Theory]
    [InlineData("--decode-tokens", "-1", "--decode-tokens")]
    [InlineData("--decode-prompt", "0", "--decode-prompt")]
    [InlineData("--decode-preset", "nonesuch", "--decode-preset")]
    [InlineData("--attention-seq", "-2", "--attention-seq")]
    [InlineData("--attention-batch", "0", "--attention-batch")]
    [InlineData("--moe-preset", "micro", "--moe-preset")]
    public void Bench_refuses_a_decode_or_attention_option_that_cannot_run_naming_it(string option, string value, string named)
    {
        // the other decode option at a size that fits micro's context of 16, so only the one under test is wrong
        string[] args = option switch
        {
            "--decode-prompt" => ["--decode-tokens", "4"],
            "--decode-tokens" => ["--decode-prompt", "4"],
            _ => ["--decode-prompt", "4", "--decode-tokens", "4"],
        };
        var r = Run(["bench", "--backend", "cpu", "--preset", "micro", "--seq", "8", .. args, option, value]);
        Assert.NotEqual(0, r.Code);
        Assert.Contains(named, r.Err + r.Out);
    }

    [Fact]
    public void Bench_refuses_a_decode_longer_than_the_context_naming_both_options()
    {
        var r = Run("bench", "--backend", "cpu", "--preset", "micro", "--seq", "8", "--decode-prompt", "10", "--decode-tokens", "10");
        Assert.NotEqual(0, r.Code);
        Assert.Contains("--decode-prompt 10 plus --decode-tokens 10 exceeds the context length 16", r.Err + r.Out);
    }

    /// <summary>`bench --moe-preset`: the MoE preset and its dense twin, the same active parameters but for the router and biases, memory
    /// as the sum of its parts (parameters = gradients, AdamW twice that), a dropped fraction in [0, 1) and none for the dense.</summary>
    [Fact]
    public void Bench_json_has_the_moe_row_against_its_dense_twin()
    {
        var r = Run("bench", "--backend", "cpu", "--preset", "micro", "--batch", "2", "--seq", "8", "--steps", "1", "--matmul-size", "16",
            "--skip-naive", "--bandwidth-mib", "8", "--decode-tokens", "0", "--attention-seq", "0", "--moe-preset", "switch-micro", "--json");
        Assert.True(r.Code == 0, $"exit {r.Code}: {r.Err}");
        var moe = JsonDocument.Parse(Lines(r.Out)[^1]).RootElement.GetProperty("llm").GetProperty("Moe");
        double D(JsonElement e, string name) => e.GetProperty(name).GetDouble();
        var (sparse, dense) = (moe.GetProperty("Moe"), moe.GetProperty("Dense"));
        var config = Models.DecoderConfig.FromPreset("switch-micro");
        // one MoE layer: a router the dense model lacks, and no FFN biases (experts have none) that the dense GPT-2 FFN has
        long router = (long)config.Moe!.Experts * config.Channels, ffnBiases = config.FfnWidth + config.Channels;
        Assert.Equal(dense.GetProperty("Parameters").GetInt64() + router - ffnBiases, sparse.GetProperty("ActiveParameters").GetInt64());
        Assert.Equal(config.ParameterCount(), sparse.GetProperty("Parameters").GetInt64());
        foreach (var row in new[] { sparse, dense })
        {
            Assert.Equal(4.0 * row.GetProperty("Parameters").GetInt64() / (1 << 20), D(row, "ParametersMiB"), 6);
            Assert.Equal(D(row, "ParametersMiB"), D(row, "GradientsMiB"));
            Assert.Equal(2 * D(row, "ParametersMiB"), D(row, "AdamWMiB"), 6);
            Assert.Equal(D(row, "ParametersMiB") + D(row, "GradientsMiB") + D(row, "AdamWMiB") + D(row, "ActivationsMiB"), D(row, "MemoryMiB"), 6);
            Assert.True(D(row, "TokensPerSecond") > 0);
        }
        Assert.InRange(D(sparse, "DroppedFraction"), 0, 0.999);
        Assert.Equal(0, D(dense, "DroppedFraction"));
    }
}
