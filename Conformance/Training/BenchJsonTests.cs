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
            "--matmul-size", "48", "--skip-naive", "--bandwidth-mib", "8", "--json");
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
    }
}
