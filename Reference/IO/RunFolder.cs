using System.Globalization;
using System.Text.RegularExpressions;

namespace Llm.IO;

/// <summary>
/// The folder a training run writes: step_NNNNNN checkpoints, <c>latest</c>, metrics.csv and loss.png. Which files
/// belong to a run (so that a new run does not mix its files with an old one's), which step folders exist, and
/// pruning them to the ones worth keeping.
/// </summary>
public static partial class RunFolder
{
    public const string MetricsFile = "metrics.csv";
    public const string PlotFile = "loss.png";

    [GeneratedRegex(@"^step_(\d+)$", RegexOptions.CultureInvariant)]
    private static partial Regex StepName();

    /// <summary>A step folder's name, its unfinished (".tmp", ".old-tmp-…") leftovers included.</summary>
    [GeneratedRegex(@"^step_\d+(\.tmp|\.old\.tmp-\w+|\.tmp-\w+)?$", RegexOptions.CultureInvariant)]
    private static partial Regex StepOrLeftover();

    /// <summary>The complete step folders (those holding a model), oldest first.</summary>
    public static List<(long Step, string Folder)> StepFolders(string runFolder)
    {
        if (!Directory.Exists(runFolder)) return [];
        return Directory.EnumerateDirectories(runFolder)
            .Select(d => (Folder: d, Match: StepName().Match(Path.GetFileName(d))))
            .Where(d => d.Match.Success && File.Exists(Path.Combine(d.Folder, Checkpoint.ModelFile))
                        && long.TryParse(d.Match.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Select(d => (long.Parse(d.Match.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture), d.Folder))
            .OrderBy(d => d.Item1)
            .ToList();
    }

    /// <summary>The run folder a checkpoint folder belongs to: the parent of a step_NNNNNN folder.</summary>
    public static string OfCheckpoint(string stepFolder)
    {
        string full = Path.GetFullPath(stepFolder).TrimEnd(Path.DirectorySeparatorChar);
        if (!StepName().IsMatch(Path.GetFileName(full)))
            throw new ArgumentException($"{stepFolder} is not a step_NNNNNN folder of a training run, so there is no run to continue");
        return Path.GetDirectoryName(full)!;
    }

    /// <summary>The files and folders of a run in <paramref name="runFolder"/> (empty when it holds none). Anything
    /// else in the folder is the user's and is never touched.</summary>
    public static List<string> RunEntries(string runFolder)
    {
        if (!Directory.Exists(runFolder)) return [];
        var entries = new List<string>();
        foreach (string name in new[] { Checkpoint.LatestFile, MetricsFile, PlotFile })
            if (File.Exists(Path.Combine(runFolder, name))) entries.Add(name);
        entries.AddRange(Directory.EnumerateDirectories(runFolder).Select(Path.GetFileName).Where(n => StepOrLeftover().IsMatch(n!)).Order()!);
        return entries;
    }

    /// <summary>Deletes the run in <paramref name="runFolder"/> (see <see cref="RunEntries"/>): `train --overwrite`.
    /// <c>latest</c> goes first, so an interrupted clearing never leaves it naming a deleted folder.</summary>
    public static void Clear(string runFolder)
    {
        foreach (string name in RunEntries(runFolder))
        {
            string path = Path.Combine(runFolder, name);
            if (Directory.Exists(path)) DeleteFolder(path);
            else File.Delete(path);
        }
    }

    /// <summary>Where a step folder goes while it is replaced or deleted: "step_NNNNNN.old.tmp-xxxxxxxx", a leftover
    /// that <see cref="RunEntries"/> recognises and no reader takes for a checkpoint.</summary>
    internal static string AsideName(string folder) => folder + ".old" + AtomicFile.TempMarker + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Renamed to a leftover name first (atomic), then deleted: a crash halfway through leaves a folder
    /// that no reader takes for a checkpoint, never a step folder with half its files.</summary>
    private static void DeleteFolder(string folder)
    {
        string doomed = AsideName(folder);
        Directory.Move(folder, doomed);
        Directory.Delete(doomed, recursive: true);
    }

    /// <summary>Creates the folder and proves it writable by writing and deleting a file, so that an unusable --out
    /// fails before training rather than at the first checkpoint.</summary>
    public static void EnsureWritable(string runFolder)
    {
        string probe = Path.Combine(runFolder, ".llm-write-test" + AtomicFile.TempMarker + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            Directory.CreateDirectory(runFolder);
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"the run folder {runFolder} is not writable ({e.Message.TrimEnd('.')})", e);
        }
    }

    /// <summary>Deletes every complete step folder whose step is not in <paramref name="keep"/>, and never the one
    /// <c>latest</c> names. Returns the deleted folders.</summary>
    public static List<string> Prune(string runFolder, IReadOnlySet<long> keep)
    {
        string? latest = File.Exists(Path.Combine(runFolder, Checkpoint.LatestFile))
            ? File.ReadAllText(Path.Combine(runFolder, Checkpoint.LatestFile)).Trim() : null;
        var deleted = new List<string>();
        foreach (var (step, folder) in StepFolders(runFolder))
        {
            if (keep.Contains(step) || Path.GetFileName(folder) == latest) continue;
            DeleteFolder(folder);
            deleted.Add(folder);
        }
        return deleted;
    }
}
