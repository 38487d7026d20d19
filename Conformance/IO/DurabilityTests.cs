using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Xunit;
using static Llm.Conformance.IO.CheckpointTests;

namespace Llm.Conformance.IO;

/// <summary>The order of a checkpoint's durable steps, observed through <see cref="FileSync.Trace"/>: every file
/// flushed before its rename, every folder flushed after the renames in it, and <c>latest</c> naming a complete model
/// at every step of a re-save.</summary>
public sealed class DurabilityTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-durability-tests-" + Guid.NewGuid().ToString("N"));
    private readonly CpuBackend _cpu = new();
    private readonly HfConfig _config = new(DecoderConfig.Micro, "byte");

    public DurabilityTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        FileSync.Trace = null;
        FolderExchange.Disabled = false;
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    private ParameterSet RandomMicro(ulong seed) => CheckpointTests.RandomMicro(_cpu, seed);

    private TrainingState StateFor(ParameterSet parameters, long step)
    {
        var m = _cpu.Allocate(DType.F32, [(int)parameters.Count], "adam.m");
        var v = _cpu.Allocate(DType.F32, [(int)parameters.Count], "adam.v");
        _cpu.Upload<float>(NastyFloats(m.Length, (ulong)step), m);
        _cpu.Upload<float>(NastyFloats(v.Length, (ulong)step + 1), v);
        return new TrainingState(step, step, 0, 1, 2, double.NaN, null, "{}") { Tensors = [m, v] };
    }

    private float[] Download(Tensor t) => CheckpointTests.Download(_cpu, t);

    private static bool BitsEqual(float[] a, float[] b) =>
        a.Length == b.Length && a.Zip(b).All(p => BitConverter.SingleToUInt32Bits(p.First) == BitConverter.SingleToUInt32Bits(p.Second));

    /// <summary>Runs <paramref name="save"/> with a trace that records each step and asks <paramref name="check"/>
    /// about the disk after it (null when it is fine, else what is wrong).</summary>
    private static List<(string Step, string? Problem)> Observe(Action save, Func<string?> check)
    {
        var steps = new List<(string, string?)>();
        FileSync.Trace = step => steps.Add((step, check()));
        try { save(); }
        finally { FileSync.Trace = null; }
        return steps;
    }

    private static int IndexOf(List<(string Step, string? Problem)> steps, string step, int from = 0)
    {
        int i = steps.FindIndex(from, s => s.Step == step);
        Assert.True(i >= 0, $"no step \"{step}\" after step {from} in:\n{string.Join("\n", steps.Select(s => s.Step))}");
        return i;
    }

    /// <summary>What a reader sees: <c>latest</c> resolves, and its folder holds a model that loads (every tensor's
    /// checksum verified) equal to one of <paramref name="versions"/>, and a training state that loads.</summary>
    private Func<string?> CompleteModelAt(string run, params ParameterSet[] versions)
    {
        var expected = versions.Select(v => Download(v.Arenas.Single().Values)).ToList();
        return () =>
        {
            try
            {
                var loaded = Checkpoint.LoadModel(run, _cpu);
                var values = Download(loaded.Parameters.Arenas.Single().Values);
                if (!expected.Any(e => BitsEqual(e, values))) return $"{loaded.Folder} holds weights of neither version";
                var n = (int)loaded.Parameters.Count;
                string state = Path.Combine(loaded.Folder, Checkpoint.TrainingStateFile);
                TrainingState.Read(state);
                TrainingState.ReadTensors(state, [_cpu.Allocate(DType.F32, [n], "adam.m"), _cpu.Allocate(DType.F32, [n], "adam.v")]);
                return null;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                return e.Message;
            }
        };
    }

    [Fact]
    public void First_save_flushes_each_file_then_the_folder_before_renaming_it_then_the_run_folder_then_latest()
    {
        string run = PathOf("run");
        string final = Path.Combine(run, "step_000001"), temp = final + ".tmp";
        var steps = Observe(() => Checkpoint.Save(run, 1, _config, RandomMicro(1), StateFor(RandomMicro(1), 1)), () => null);

        Assert.Equal($"fsync folder {_dir}", steps[0].Step); // the new run folder's name
        foreach (string file in new[] { Checkpoint.ModelFile, Checkpoint.ConfigFile, Checkpoint.TrainingStateFile })
        {
            string target = Path.Combine(temp, file);
            int rename = steps.FindIndex(s => s.Step.StartsWith("rename " + target + AtomicFile.TempMarker) && s.Step.EndsWith(" -> " + target));
            Assert.True(rename > 0, $"{file} was not renamed into place");
            string written = steps[rename].Step["rename ".Length..steps[rename].Step.IndexOf(" -> ")];
            Assert.Equal($"fsync file {written}", steps[rename - 1].Step);
            Assert.Equal($"fsync folder {temp}", steps[rename + 1].Step);
        }
        int folderSync = steps.FindLastIndex(s => s.Step == $"fsync folder {temp}");
        int folderRename = IndexOf(steps, $"rename {temp} -> {final}");
        Assert.True(folderSync < folderRename, "the step folder was renamed before it was flushed");
        int runSync = IndexOf(steps, $"fsync folder {run}", folderRename);
        Assert.Equal(folderRename + 1, runSync);
        int latest = steps.FindIndex(s => s.Step.StartsWith("rename ") && s.Step.EndsWith(" -> " + Path.Combine(run, Checkpoint.LatestFile)));
        Assert.True(latest > runSync, "latest was written before the step folder's rename was flushed");
        Assert.StartsWith("fsync file ", steps[latest - 1].Step);
        Assert.Equal($"fsync folder {run}", steps[^1].Step); // latest's new name, last of all
    }

    [Fact]
    public void Re_saving_a_step_keeps_latest_naming_a_complete_model_at_every_step()
    {
        if (!OperatingSystem.IsLinux()) return; // the atomic swap is Linux's; elsewhere the next test's path is taken
        string run = PathOf("run");
        string final = Path.Combine(run, "step_000100"), temp = final + ".tmp";
        var before = RandomMicro(1);
        var after = RandomMicro(2);
        Checkpoint.Save(run, 100, _config, before, StateFor(before, 100));

        var steps = Observe(() => Checkpoint.Save(run, 100, _config, after, StateFor(after, 100)), CompleteModelAt(run, before, after));

        var broken = steps.Where(s => s.Problem is not null).Select(s => $"after \"{s.Step}\": {s.Problem}").ToList();
        Assert.True(broken.Count == 0, string.Join("\n", broken));
        int exchange = IndexOf(steps, $"exchange {temp} <-> {final}"); // Linux: one atomic swap
        Assert.Equal($"fsync folder {temp}", steps[exchange - 1].Step);
        Assert.Equal($"fsync folder {run}", steps[exchange + 1].Step);
        Assert.Equal($"delete {temp}", steps[exchange + 2].Step);
        Assert.True(BitsEqual(Download(after.Arenas.Single().Values), Download(Checkpoint.LoadModel(run, _cpu).Parameters.Arenas.Single().Values)));
        Assert.Equal(["latest", "step_000100"], Directory.GetFileSystemEntries(run).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void Without_an_atomic_swap_the_one_gap_is_between_the_two_renames()
    {
        string run = PathOf("run");
        string final = Path.Combine(run, "step_000100"), temp = final + ".tmp";
        var before = RandomMicro(1);
        var after = RandomMicro(2);
        Checkpoint.Save(run, 100, _config, before, StateFor(before, 100));

        FolderExchange.Disabled = true; // as on macOS, old glibc, or a file system without RENAME_EXCHANGE
        List<(string Step, string? Problem)> steps;
        try { steps = Observe(() => Checkpoint.Save(run, 100, _config, after, StateFor(after, 100)), CompleteModelAt(run, before, after)); }
        finally { FolderExchange.Disabled = false; }

        Assert.DoesNotContain(steps, s => s.Step.StartsWith("exchange "));
        var broken = steps.Where(s => s.Problem is not null).ToList();
        var aside = Assert.Single(broken);
        Assert.StartsWith($"rename {final} -> {final}.old{AtomicFile.TempMarker}", aside.Step);
        Assert.Equal($"rename {temp} -> {final}", steps[steps.IndexOf(aside) + 1].Step);
        Assert.True(BitsEqual(Download(after.Arenas.Single().Values), Download(Checkpoint.LoadModel(run, _cpu).Parameters.Arenas.Single().Values)));
        Assert.Equal(["latest", "step_000100"], Directory.GetFileSystemEntries(run).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void FolderExchange_swaps_two_folders_and_names_both_on_failure()
    {
        if (!OperatingSystem.IsLinux()) return; // renameat2 is Linux's
        string a = PathOf("a"), b = PathOf("b");
        Directory.CreateDirectory(a);
        Directory.CreateDirectory(b);
        File.WriteAllText(Path.Combine(a, "from_a"), "");
        File.WriteAllText(Path.Combine(b, "from_b"), "");
        Assert.True(FolderExchange.TryExchange(a, b), "renameat2(RENAME_EXCHANGE) is unavailable here");
        Assert.True(File.Exists(Path.Combine(a, "from_b")));
        Assert.True(File.Exists(Path.Combine(b, "from_a")));

        var e = Assert.Throws<IOException>(() => FolderExchange.TryExchange(a, PathOf("missing")));
        Assert.Contains(a, e.Message);
        Assert.Contains(PathOf("missing"), e.Message);
        Assert.Contains("errno", e.Message);
    }

    [Fact]
    public void SyncFolder_names_the_folder_it_cannot_flush()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return; // a no-op elsewhere, by design
        var e = Assert.Throws<IOException>(() => FileSync.SyncFolder(PathOf("missing")));
        Assert.Contains(PathOf("missing"), e.Message);
        Assert.Contains("open failed", e.Message);
        string file = PathOf("file");
        File.WriteAllText(file, "");
        e = Assert.Throws<IOException>(() => FileSync.SyncFolder(file)); // O_DIRECTORY: a file is not a folder
        Assert.Contains(file, e.Message);
        FileSync.SyncFolder(_dir);
    }
}
