using System.Globalization;
using System.Text.RegularExpressions;
using Llm.Models;
using Llm.Tensors;

namespace Llm.IO;

/// <summary>
/// Model folders and training checkpoints. A model folder is what the Hugging Face hub serves for GPT-2:
/// model.safetensors (every parameter under its HF name, Conv1D layout) + config.json. A training run writes
/// <c>DIR/step_000100/{model.safetensors, config.json, training_state.safetensors}</c> and <c>DIR/latest</c>, a text
/// file naming the newest step folder. Every file is replaced atomically, and a step folder appears only complete:
/// it is written as "step_000100.tmp" and renamed, and only then is <c>latest</c> pointed at it. Each step is flushed
/// to the disk before the next one depends on it (files, then their folder, then its rename, then the run folder,
/// then <c>latest</c>), so that after a power cut <c>latest</c> still names a complete folder.
/// </summary>
public static class Checkpoint
{
    public const string ModelFile = "model.safetensors";
    public const string ConfigFile = "config.json";
    public const string TrainingStateFile = "training_state.safetensors";
    public const string LatestFile = "latest";
    /// <summary>Prefix of every name in a GPT2LMHeadModel's save_pretrained; GPT2Model saves without it.</summary>
    public const string HfPrefix = "transformer.";

    public static string StepFolderName(long step) => $"step_{step:D6}";

    // ---- writing ----------------------------------------------------------------------------------------------

    /// <summary>Writes <c>runFolder/step_NNNNNN/</c> (model, config and, when given, the training state), then points
    /// <c>runFolder/latest</c> at it. Returns the step folder. A failure leaves neither a partial folder nor a
    /// changed <c>latest</c>.</summary>
    public static string Save(string runFolder, long step, HfConfig config, ParameterSet parameters, TrainingState? state = null)
    {
        string name = StepFolderName(step);
        string run = Path.GetFullPath(runFolder);
        string final = Path.Combine(run, name);
        string temp = final + ".tmp";
        FileSync.CreateFolder(run);
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); // left over from a crashed save
        Directory.CreateDirectory(temp); // its name becomes durable with the rename below and the run folder's fsync
        try
        {
            SaveModel(temp, config, parameters);
            if (state is not null)
            {
                state.Save(Path.Combine(temp, TrainingStateFile));
            }
            // Every file's name in it is durable before the folder gets its real name. AtomicFile's last write has done
            // so already; said here so that the order does not depend on how the files were written.
            FileSync.SyncFolder(temp);
            if (Directory.Exists(final))
                Replace(run, temp, final);
            else
            {
                Directory.Move(temp, final);
                FileSync.Traced($"rename {temp} -> {final}");
                FileSync.SyncFolder(run); // the rename is durable before latest names the folder
            }
        }
        catch
        {
            try { if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); } catch (IOException) { }
            throw;
        }
        AtomicFile.WriteAllText(Path.Combine(run, LatestFile), name + "\n");
        return final;
    }

    /// <summary>Re-saving a step: puts the complete new folder <paramref name="temp"/> in the place of
    /// <paramref name="final"/> and deletes the old one, so that <c>final</c> is a complete folder at every instant.</summary>
    private static void Replace(string run, string temp, string final)
    {
        if (FolderExchange.TryExchange(temp, final))
        {
            FileSync.SyncFolder(run); // the swap is durable before the old copy (now at temp) goes
            Directory.Delete(temp, recursive: true);
            FileSync.Traced($"delete {temp}");
            return;
        }
        // No atomic swap on this system: a folder rename cannot overwrite, so the old folder moves aside first. Between
        // the two renames final does not exist, and a crash there leaves latest (when it names this step) pointing at
        // a missing folder, with the old copy at "<final>.old.tmp-*" and the new one at "<final>.tmp".
        string old = RunFolder.AsideName(final);
        Directory.Move(final, old);
        FileSync.Traced($"rename {final} -> {old}");
        try
        {
            Directory.Move(temp, final);
            FileSync.Traced($"rename {temp} -> {final}");
        }
        catch
        {
            Directory.Move(old, final); // put the old step back rather than leave none
            throw;
        }
        FileSync.SyncFolder(run);
        Directory.Delete(old, recursive: true);
        FileSync.Traced($"delete {old}");
    }

    /// <summary>Writes model.safetensors and config.json into <paramref name="folder"/>: a folder that
    /// <c>GPT2LMHeadModel.from_pretrained</c> can load.</summary>
    public static void SaveModel(string folder, HfConfig config, ParameterSet parameters)
    {
        Directory.CreateDirectory(folder);
        SaveWeights(Path.Combine(folder, ModelFile), parameters);
        config.Save(Path.Combine(folder, ConfigFile));
    }

    /// <summary>Every parameter under its own name, no prefix, in spec order, as the hub's gpt2/model.safetensors.</summary>
    public static void SaveWeights(string path, ParameterSet parameters) =>
        SafeTensorsWriter.Write(path, parameters.All.Select(p => SafeTensorsEntry.FromTensor(p.Value, p.Name)),
            new Dictionary<string, string> { ["format"] = "pt" });

    // ---- reading ----------------------------------------------------------------------------------------------

    /// <summary>The folder holding model.safetensors + config.json for <paramref name="path"/>, which may be: that
    /// folder itself (a step folder or a hub download), the model.safetensors file in it, or a run folder (→ the
    /// folder named by <c>latest</c>, or the highest complete step_* folder when <c>latest</c> is missing).</summary>
    public static string ResolveModelFolder(string path)
    {
        string full = Path.GetFullPath(path);
        if (File.Exists(full) && Path.GetFileName(full) == ModelFile) full = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(full))
            throw new DirectoryNotFoundException($"{path}: no such model folder");
        if (File.Exists(Path.Combine(full, ModelFile)))
            return CheckModelFolder(full, path);

        string latest = Path.Combine(full, LatestFile);
        if (File.Exists(latest))
        {
            string name = File.ReadAllText(latest).Trim();
            if (name.Length == 0 || name != Path.GetFileName(name) || name is "." or "..")
                throw new InvalidDataException($"{latest}: \"{name}\" is not the name of a step folder");
            string folder = Path.Combine(full, name);
            if (!File.Exists(Path.Combine(folder, ModelFile)))
                throw new FileNotFoundException($"{latest} names \"{name}\", but {folder} has no {ModelFile}");
            return CheckModelFolder(folder, path);
        }

        var steps = RunFolder.StepFolders(full);
        if (steps.Count == 0)
            throw new FileNotFoundException($"{path}: neither {ModelFile}, nor a '{LatestFile}' file, nor a step_* folder with a {ModelFile}");
        return CheckModelFolder(steps[^1].Folder, path);
    }

    private static string CheckModelFolder(string folder, string asked)
    {
        if (!File.Exists(Path.Combine(folder, ConfigFile)))
            throw new FileNotFoundException($"{folder} (from {asked}) has {ModelFile} but no {ConfigFile}");
        return folder;
    }

    /// <summary>Loads config and weights from anything <see cref="ResolveModelFolder"/> accepts, onto <paramref name="backend"/>.</summary>
    /// <param name="frozen">Names the parameters not to train (no gradient, no optimizer state); default none.</param>
    public static LoadedModel LoadModel(string path, IBackend backend, Func<string, bool>? frozen = null)
    {
        string folder = ResolveModelFolder(path);
        string configPath = Path.Combine(folder, ConfigFile);
        var config = HfConfig.Load(configPath);
        using var file = SafeTensorsFile.Read(Path.Combine(folder, ModelFile));
        CheckConfigAgainstWeights(file, config.Model, configPath);
        var parameters = new ParameterSet(backend, config.Model.ParameterSpecs(), frozen: frozen);
        LoadWeights(file, parameters);
        return new LoadedModel(folder, config, parameters);
    }

    public static void LoadWeights(string path, ParameterSet parameters)
    {
        using var file = SafeTensorsFile.Read(path);
        LoadWeights(file, parameters);
    }

    private static readonly Regex AttentionBuffer = new(@"^h\.\d+\.attn\.(bias|masked_bias)$", RegexOptions.CultureInvariant);

    /// <summary>Fills every parameter from <paramref name="file"/>. Accepts a real HF GPT-2 file: names with the
    /// "transformer." prefix, the causal-mask buffers h.N.attn.bias / h.N.attn.masked_bias (ignored), a tied
    /// lm_head.weight of wte's shape (ignored), F16/BF16/F64 data (converted). Anything else, missing, misshapen
    /// or of a non-float dtype, is an error naming the tensor.</summary>
    public static void LoadWeights(SafeTensorsFile file, ParameterSet parameters)
    {
        var source = new Dictionary<string, string>(); // parameter name → name in the file
        foreach (string name in file.Names)
        {
            string key = name.StartsWith(HfPrefix, StringComparison.Ordinal) ? name[HfPrefix.Length..] : name;
            if (AttentionBuffer.IsMatch(key)) continue; // the causal mask, a constant buffer, not a parameter
            if (key == "lm_head.weight")
            {
                var wte = parameters["wte.weight"].Shape;
                var head = file.Info(name).Shape;
                if (!head.SequenceEqual(wte))
                    throw new InvalidDataException($"{file.Path}: tensor '{name}' has shape {Tensor.ShapeString(head)}, not wte.weight's {Tensor.ShapeString(wte)}: an untied output head is not supported");
                continue; // tied: the output projection is wte
            }
            if (!parameters.Contains(key))
                throw new InvalidDataException($"{file.Path}: unexpected tensor '{name}' {Tensor.ShapeString(file.Info(name).Shape)}: not a parameter of this GPT-2 configuration");
            if (!source.TryAdd(key, name))
                throw new InvalidDataException($"{file.Path}: tensor '{key}' appears twice, as '{source[key]}' and '{name}'");
        }
        var missing = parameters.All.Where(p => !source.ContainsKey(p.Name)).Select(p => p.Name).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{file.Path}: missing tensor{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Take(8).Select(m => $"'{m}'"))}{(missing.Count > 8 ? $" and {missing.Count - 8} more" : "")}");

        foreach (var p in parameters.All)
        {
            var info = file.Info(source[p.Name]);
            if (!info.Shape.SequenceEqual(p.Shape))
                throw new InvalidDataException($"{file.Path}: tensor '{info.Name}' has shape {Tensor.ShapeString(info.Shape)}, the model expects {p.Value.Describe()}");
            ReadInto(file, info, p.Value);
        }
    }

    /// <summary>The numbers config.json promises against what the weights contain, so that a wrong config is reported
    /// as such rather than as a puzzling shape mismatch further down.</summary>
    private static void CheckConfigAgainstWeights(SafeTensorsFile file, DecoderConfig config, string configPath)
    {
        SafeTensorInfo? Find(string name) =>
            file.Contains(name) ? file.Info(name) : file.Contains(HfPrefix + name) ? file.Info(HfPrefix + name) : null;

        if (Find("wte.weight") is { } wte && !wte.Shape.SequenceEqual([config.VocabSize, config.Channels]))
            throw new InvalidDataException($"{configPath} says vocab_size {config.VocabSize}, n_embd {config.Channels}, but {file.Path} has {wte.Name} {Tensor.ShapeString(wte.Shape)}");
        if (Find("wpe.weight") is { } wpe && !wpe.Shape.SequenceEqual([config.ContextLength, config.Channels]))
            throw new InvalidDataException($"{configPath} says n_positions {config.ContextLength}, n_embd {config.Channels}, but {file.Path} has {wpe.Name} {Tensor.ShapeString(wpe.Shape)}");
        var layer = new Regex(@"^(?:transformer\.)?h\.(\d+)\.");
        int layers = file.Names.Select(n => layer.Match(n)).Where(m => m.Success)
            .Select(m => int.TryParse(m.Groups[1].ValueSpan, out int l) ? l + 1 : int.MaxValue).DefaultIfEmpty(0).Max();
        if (layers != config.Layers)
            throw new InvalidDataException($"{configPath} says n_layer {config.Layers}, but {file.Path} has blocks h.0 .. h.{layers - 1} ({layers} layers)");
    }

    /// <summary>File tensor → host array of the destination's dtype → backend.Upload (the tensor may live on a device).</summary>
    internal static void ReadInto(SafeTensorsFile file, SafeTensorInfo info, Tensor destination)
    {
        if (info.DType is not (DType.F32 or DType.F16 or DType.BF16 or DType.F64))
            throw new InvalidDataException($"{file.Path}: tensor '{info.Name}' has dtype {info.DTypeName}, expected a float type (F32, F16, BF16 or F64) for {destination.Describe()}");
        switch (destination.DType)
        {
            case DType.F32:
                var floats = GC.AllocateUninitializedArray<float>(destination.Length);
                file.ReadFloat(info.Name, floats);
                destination.Backend.Upload<float>(floats, destination);
                break;
            case DType.F64:
                var doubles = GC.AllocateUninitializedArray<double>(destination.Length);
                file.ReadDouble(info.Name, doubles);
                destination.Backend.Upload<double>(doubles, destination);
                break;
            default:
                throw new NotSupportedException($"loading into {destination.Describe()}: only F32 and F64 destinations are supported");
        }
    }
}

/// <summary>What <see cref="Checkpoint.LoadModel"/> returns: the resolved folder, its config, the filled parameters.</summary>
public sealed record LoadedModel(string Folder, HfConfig Config, ParameterSet Parameters);
