using System.Diagnostics;
using Llm.IO;
using Xunit;

namespace Llm.Conformance.Cpu;

/// <summary>
/// The CPU fast paths split work into fixed chunks, never per thread, so results must not depend on how many cores
/// run them: the same training run in two processes, one limited to a single processor (DOTNET_PROCESSOR_COUNT=1)
/// and one with the machine's count, must write bit-identical weights and optimizer state. The tiny preset at
/// B = 4, T = 64 puts every op past the 2¹⁸-element parallel threshold.
/// </summary>
public sealed class ThreadCountTests
{
    private static IReadOnlyDictionary<string, uint> Train(string folder, string? processors)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "llm.dll"), "train", "--backend", "cpu", "--preset", "tiny",
                "--steps", "2", "--batch", "4", "--seq", "64", "--eval-every", "2", "--out", folder },
        };
        if (processors is not null) psi.Environment["DOTNET_PROCESSOR_COUNT"] = processors;
        using var process = Process.Start(psi)!;
        var output = process.StandardOutput.ReadToEndAsync();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"llm train (DOTNET_PROCESSOR_COUNT={processors ?? "default"}) failed: {error}\n{output.Result}");
        var (_, last) = RunFolder.StepFolders(folder)[^1];
        var model = SafeTensorsFile.Read(Path.Combine(last, Checkpoint.ModelFile)).Checksums;
        var state = SafeTensorsFile.Read(Path.Combine(last, Checkpoint.TrainingStateFile)).Checksums;
        return model.Concat(state).ToDictionary();
    }

    [Fact]
    public void TrainingGivesTheSameBitsOnOneProcessorAsOnAll()
    {
        string root = Directory.CreateTempSubdirectory("llm-threads-").FullName;
        try
        {
            var one = Train(Path.Combine(root, "one"), "1");
            var all = Train(Path.Combine(root, "all"), null);
            Assert.NotEmpty(one);
            foreach (var (name, crc) in all)
                Assert.True(one.TryGetValue(name, out uint other) && other == crc,
                    $"{name}: CRC-32 {crc:x8} with {Environment.ProcessorCount} processors, {(one.ContainsKey(name) ? $"{one[name]:x8}" : "absent")} with 1");
        }
        finally { Directory.Delete(root, recursive: true); }
    }
}
