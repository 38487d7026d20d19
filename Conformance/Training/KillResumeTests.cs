using System.Diagnostics;
using Xunit;
using static Llm.Conformance.Training.CliRun;

namespace Llm.Conformance.Training;

/// <summary>
/// A real `llm train` process killed with SIGKILL between any two durable steps of a checkpoint write (LLM_TRACE_IO=step
/// makes it wait after each "io: ..." line, so the kill lands exactly there) or at an arbitrary moment between checkpoints,
/// then resumed: the run ends with the same metrics and the same final weights, bit for bit, as one never interrupted.
/// </summary>
public sealed class KillResumeTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-kill-" + Guid.NewGuid().ToString("N")[..8]);
    public KillResumeTests() => Directory.CreateDirectory(_dir);
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private static string[] Train(string output) =>
        ["train", "--backend", "cpu", "--preset", "micro", "--steps", "6", "--batch", "2", "--eval-every", "2", "--eval-batches", "1",
         "--checkpoint-every", "2", "--out", output];

    private static string LlmDll => Path.Combine(AppContext.BaseDirectory, "llm.dll");

    /// <summary>Starts train in its own process and answers its io steps; kills it (SIGKILL, the whole tree) after the
    /// <paramref name="killAfter"/>-th step that writes the step-4 checkpoint, or, when null, 50 ms after that checkpoint
    /// is complete (somewhere in steps 5–6 or the next write). Returns whether the process was still running when killed.</summary>
    private static bool RunAndKill(string output, int? killAfter)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardInput = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(LlmDll);
        foreach (var a in Train(output)) start.ArgumentList.Add(a);
        start.Environment["LLM_TRACE_IO"] = "step";
        using var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };   // drained, not read
        process.BeginOutputReadLine();
        int inCheckpoint = 0;
        bool complete = false;
        string? line;
        while ((line = process.StandardError.ReadLine()) is not null)
        {
            if (!line.StartsWith("io: ")) continue;
            if (line.Contains("step_000004")) inCheckpoint++;
            if (killAfter is { } k && inCheckpoint == k) break;
            if (inCheckpoint > 0 && line.StartsWith("io: rename") && line.Contains("metrics.csv.tmp")) complete = true;   // the step-4 write's last rename
            process.StandardInput.WriteLine();
            process.StandardInput.Flush();
            if (killAfter is null && complete)
            {
                // let it run on unhindered for a while: every later io step is answered at once
                var deadline = Stopwatch.StartNew();
                while (deadline.ElapsedMilliseconds < 50 && !process.HasExited) { process.StandardInput.WriteLine(); Thread.Sleep(1); }
                break;
            }
        }
        bool running = !process.HasExited;
        if (running) process.Kill(entireProcessTree: true);
        process.WaitForExit();
        return running;
    }

    public static TheoryData<int?> KillPoints()
    {
        var data = new TheoryData<int?>();
        // the step-4 checkpoint's io steps: model file fsynced, renamed, folder fsynced, config..., the folder renamed into
        // place, latest written and renamed, metrics.csv: before, inside and after each of them
        foreach (int k in new[] { 1, 2, 3, 6, 9, 10, 11, 12, 14 }) data.Add(k);
        data.Add(null);
        return data;
    }

    [Theory, MemberData(nameof(KillPoints))]
    public void A_run_killed_at_any_step_resumes_to_the_same_end(int? killAfter)
    {
        string whole = Path.Combine(_dir, "whole"), killed = Path.Combine(_dir, "killed");
        var r = Run(Train(whole));
        Assert.True(r.Code == 0, r.Err + r.Out);

        bool wasRunning = RunAndKill(killed, killAfter);
        Assert.True(wasRunning || killAfter is null, $"the process ended before the kill point {killAfter}");
        Assert.True(Directory.Exists(Path.Combine(killed, "step_000002")), "the kill came after the step-2 checkpoint");
        // the 11th io step renames step_000004.tmp into place: before it the kill left a half-written checkpoint behind
        if (killAfter is { } k)
            Assert.True(Directory.Exists(Path.Combine(killed, "step_000004")) == k >= 11, $"after io step {k}, step_000004 should {(k >= 11 ? "" : "not ")}exist");
        var resumed = Run("train", "--backend", "cpu", "--resume", killed, "--steps", "6");
        Assert.True(resumed.Code == 0, $"resume after a kill at {killAfter?.ToString() ?? "a moment between checkpoints"}: {resumed.Err}{resumed.Out}");

        Assert.Equal(File.ReadAllText(Path.Combine(whole, "metrics.csv")), File.ReadAllText(Path.Combine(killed, "metrics.csv")));
        Assert.True(File.ReadAllBytes(Path.Combine(whole, "step_000006", "model.safetensors")).AsSpan()
                .SequenceEqual(File.ReadAllBytes(Path.Combine(killed, "step_000006", "model.safetensors"))),
            $"step_000006/model.safetensors differs from the uninterrupted run's after a kill at {killAfter?.ToString() ?? "a moment between checkpoints"}");
        // the training state's tensors (AdamW's moments) bit for bit; its metadata names each run's own --out
        Llm.Conformance.IO.FixtureVariants.AssertSameTensors(Path.Combine(whole, "step_000006", "training_state.safetensors"),
            Path.Combine(killed, "step_000006", "training_state.safetensors"));
    }
}
