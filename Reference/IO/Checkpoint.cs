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
    /// <summary>A sharded checkpoint's index: {"weight_map": {tensor name: shard file name}} (save_pretrained's
    /// max_shard_size, as every 7B LLaMA on the hub).</summary>
    public const string IndexFile = "model.safetensors.index.json";
    public const string ConfigFile = "config.json";
    public const string TrainingStateFile = "training_state.safetensors";
    public const string LatestFile = "latest";
    /// <summary>Prefix of every name in a GPT2LMHeadModel's (and BloomForCausalLM's) save_pretrained; GPT2Model and
    /// BloomModel save without it, as the hub's gpt2 and bloom-560m files are.</summary>
    public const string HfPrefix = "transformer.";

    public static string StepFolderName(long step) => $"step_{step:D6}";

    // ---- writing ----------------------------------------------------------------------------------------------

    /// <summary>Writes <c>runFolder/step_NNNNNN/</c> (model, config and, when given, the training state), then points
    /// <c>runFolder/latest</c> at it. Returns the step folder. A failure leaves neither a partial folder nor a
    /// changed <c>latest</c>.</summary>
    public static string Save(string runFolder, long step, IModelConfigFile config, ParameterSet parameters, TrainingState? state = null)
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
    public static void SaveModel(string folder, IModelConfigFile config, ParameterSet parameters)
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
    /// folder itself (a step folder or a hub download), the model.safetensors file in it, a run folder (→ the
    /// folder named by <c>latest</c>, or the highest complete step_* folder when <c>latest</c> is missing), or a folder
    /// in Meta's LLaMA layout (params.json + consolidated.*.safetensors, no config.json; see <see cref="MetaLlama"/>).</summary>
    public static string ResolveModelFolder(string path)
    {
        string full = Path.GetFullPath(path);
        if (File.Exists(full) && Path.GetFileName(full) is ModelFile or IndexFile) full = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(full))
            throw new DirectoryNotFoundException($"{path}: no such model folder");
        if (File.Exists(Path.Combine(full, ModelFile)) || File.Exists(Path.Combine(full, IndexFile)))
            return CheckModelFolder(full, path);
        if (MetaLlama.IsMetaFolder(full)) return full;   // Meta's params.json + consolidated.*: converted on load

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

    /// <summary>Loads config and weights from anything <see cref="ResolveModelFolder"/> accepts, onto <paramref name="backend"/>.
    /// A Meta folder comes back as the Hugging Face LLaMA it converts to, and <see cref="SaveModel"/> writes it as one.</summary>
    /// <param name="frozen">Names the parameters not to train (no gradient, no optimizer state); default none.</param>
    public static LoadedModel LoadModel(string path, IBackend backend, Func<string, bool>? frozen = null)
    {
        string folder = ResolveModelFolder(path);
        if (MetaLlama.IsMetaFolder(folder) && !File.Exists(Path.Combine(folder, ModelFile)) && !File.Exists(Path.Combine(folder, IndexFile)))
            return MetaLlama.Load(folder, backend, frozen);
        string configPath = Path.Combine(folder, ConfigFile);
        var config = HfConfig.Load(configPath);
        using var tensors = CheckpointTensors.Open(folder);
        CheckConfigAgainstWeights(tensors, config.Model, configPath);
        var parameters = new ParameterSet(backend, config.Model.ParameterSpecs(), frozen: frozen);
        LoadWeights(tensors, parameters);
        return new LoadedModel(folder, config, parameters);
    }

    public static void LoadWeights(string path, ParameterSet parameters)
    {
        using var file = SafeTensorsFile.Read(path);
        LoadWeights(file, parameters);
    }

    public static void LoadWeights(SafeTensorsFile file, ParameterSet parameters) => LoadWeights(new CheckpointTensors([file], owned: false), parameters);

    /// <summary>Non-parameter buffers that transformers' older saves carry: GPT-2's and GPT-NeoX's causal masks
    /// (attn.bias, attn.masked_bias, attention.bias, attention.masked_bias) and the rotary tables of NeoX and LLaMA
    /// (rotary_emb.inv_freq): constants recomputed here, skipped on load.</summary>
    private static readonly Regex Buffer = new(@"^(?:.*\.)?(?:attn|attention|self_attn)\.(?:bias|masked_bias|rotary_emb\.inv_freq)$|^(?:.*\.)?rotary_emb\.inv_freq$",
        RegexOptions.CultureInvariant);

    /// <summary>The family whose token embedding the parameter set holds.</summary>
    private static WeightNames FamilyOf(ParameterSet parameters) =>
        new WeightNames[] { Gpt2Names.Instance, LlamaNames.Instance, BloomNames.Instance, NeoXNames.Instance }
            .First(n => parameters.Contains(n.TokenEmbedding));

    /// <summary>The prefix a family's *ForCausalLM save_pretrained puts on the base model's names, where its own names
    /// do not already carry it (LLaMA's "model.", NeoX's "gpt_neox." are in the names).</summary>
    private static string? PrefixOf(WeightNames names) => names is Gpt2Names or BloomNames ? HfPrefix : null;

    /// <summary>Fills every parameter from <paramref name="tensors"/>, in the family of the parameter set. Accepts a
    /// real HF file: names with the "transformer." prefix (GPT-2, BLOOM), the buffers of <see cref="Buffer"/>
    /// (ignored), a tied head under the head's name (GPT-2: of the embedding's shape, ignored as GPT2LMHeadModel
    /// ignores it; the others: equal to the embedding, as a tied save holds it), F16/BF16/F64 data (converted).
    /// Anything else, missing, misshapen or of a non-float dtype, is an error naming the tensor and its file.</summary>
    internal static void LoadWeights(CheckpointTensors tensors, ParameterSet parameters)
    {
        var names = FamilyOf(parameters);
        string? prefix = PrefixOf(names);
        string family = names switch { Gpt2Names => "GPT-2", LlamaNames => "LLaMA", BloomNames => "BLOOM", _ => "GPT-NeoX" };
        var source = new Dictionary<string, string>(); // parameter name → name in the file
        string? tiedHead = null;
        foreach (string name in tensors.Names)
        {
            string key = prefix is not null && name.StartsWith(prefix, StringComparison.Ordinal) ? name[prefix.Length..] : name;
            if (!parameters.Contains(key))
            {
                if (key == names.LmHead)
                {
                    var embedding = parameters[names.TokenEmbedding].Shape;
                    var head = tensors.Info(name).Shape;
                    if (!head.SequenceEqual(embedding))
                        throw new InvalidDataException($"{tensors.FileOf(name)}: tensor '{name}' has shape {Tensor.ShapeString(head)}, not {names.TokenEmbedding}'s {Tensor.ShapeString(embedding)}: an untied output head is not supported");
                    tiedHead = name; // tied: the output projection is the embedding
                    continue;
                }
                if (Buffer.IsMatch(key)) continue; // a constant buffer, not a parameter
                throw new InvalidDataException($"{tensors.FileOf(name)}: unexpected tensor '{name}' {Tensor.ShapeString(tensors.Info(name).Shape)}: not a parameter of this {family} configuration");
            }
            if (!source.TryAdd(key, name))
                throw new InvalidDataException($"{tensors.FileOf(name)}: tensor '{key}' appears twice, as '{source[key]}' and '{name}'");
        }
        var missing = parameters.All.Where(p => !source.ContainsKey(p.Name)).Select(p => p.Name).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{tensors.Path}: missing tensor{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Take(8).Select(m => $"'{m}'"))}{(missing.Count > 8 ? $" and {missing.Count - 8} more" : "")}");

        foreach (var p in parameters.All)
        {
            var info = tensors.Info(source[p.Name]);
            if (!info.Shape.SequenceEqual(p.Shape))
                throw new InvalidDataException($"{tensors.FileOf(info.Name)}: tensor '{info.Name}' has shape {Tensor.ShapeString(info.Shape)}, the model expects {p.Value.Describe()}");
            ReadInto(tensors.FileOf(info.Name), info, p.Value);
        }
        if (tiedHead is not null && names is not Gpt2Names && !SameValues(tensors, tiedHead, source[names.TokenEmbedding]))
            throw new InvalidDataException($"{tensors.FileOf(tiedHead)}: tensor '{tiedHead}' differs from '{source[names.TokenEmbedding]}', but tie_word_embeddings is true: an untied head needs tie_word_embeddings false in config.json");
    }

    /// <summary>Whether two tensors of one shape hold the same floats, bit for bit.</summary>
    internal static bool SameValues(CheckpointTensors tensors, string a, string b)
    {
        var x = new float[tensors.Info(a).ElementCount];
        var y = new float[x.Length];
        tensors.FileOf(a).ReadFloat(a, x);
        tensors.FileOf(b).ReadFloat(b, y);
        return x.AsSpan().SequenceEqual(y);
    }

    /// <summary>The numbers config.json promises against what the weights contain, so that a wrong config is reported
    /// as such rather than as a puzzling shape mismatch further down.</summary>
    private static void CheckConfigAgainstWeights(CheckpointTensors tensors, DecoderConfig config, string configPath)
    {
        var names = WeightNames.For(config);
        string? prefix = PrefixOf(names);
        SafeTensorInfo? Find(string name) =>
            tensors.Contains(name) ? tensors.Info(name) : prefix is not null && tensors.Contains(prefix + name) ? tensors.Info(prefix + name) : null;
        var (embd, layerField) = config.Naming switch
        {
            WeightNaming.Gpt2 => ("n_embd", "n_layer"),
            WeightNaming.Bloom => ("hidden_size", "n_layer"),
            _ => ("hidden_size", "num_hidden_layers"),
        };

        if (Find(names.TokenEmbedding) is { } wte && !wte.Shape.SequenceEqual([config.VocabSize, config.Channels]))
            throw new InvalidDataException($"{configPath} says vocab_size {config.VocabSize}, {embd} {config.Channels}, but {tensors.FileOf(wte.Name)} has {wte.Name} {Tensor.ShapeString(wte.Shape)}");
        if (names.PositionEmbedding(config) is { } pos && Find(pos) is { } wpe && !wpe.Shape.SequenceEqual([config.ContextLength, config.Channels]))
            throw new InvalidDataException($"{configPath} says n_positions {config.ContextLength}, n_embd {config.Channels}, but {tensors.FileOf(wpe.Name)} has {wpe.Name} {Tensor.ShapeString(wpe.Shape)}");
        // the blocks' common prefix: "h" in h.0.ln_1, "model.layers" in model.layers.0.input_layernorm
        string norm1 = names.Block(config, 0).Norm1;
        string blocks = norm1[..norm1.IndexOf(".0.", StringComparison.Ordinal)];
        var layer = new Regex($@"^(?:{Regex.Escape(prefix ?? "")})?{Regex.Escape(blocks)}\.(\d+)\.");
        int layers = tensors.Names.Select(n => layer.Match(n)).Where(m => m.Success)
            .Select(m => int.TryParse(m.Groups[1].ValueSpan, out int l) ? l + 1 : int.MaxValue).DefaultIfEmpty(0).Max();
        if (layers != config.Layers)
            throw new InvalidDataException($"{configPath} says {layerField} {config.Layers}, but {tensors.Path} has blocks {blocks}.0 .. {blocks}.{layers - 1} ({layers} layers)");
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

/// <summary>One checkpoint's tensors: model.safetensors, or the shards that model.safetensors.index.json maps every
/// tensor to (each shard's tensors exactly those the index gives it).</summary>
internal sealed class CheckpointTensors(IReadOnlyList<SafeTensorsFile> files, bool owned, string? path = null) : IDisposable
{
    private readonly Dictionary<string, SafeTensorsFile> _fileOf = Index(files);

    /// <summary>The file named in messages about the checkpoint as a whole: the index, or the one file.</summary>
    public string Path { get; } = path ?? files[0].Path;
    /// <summary>Every tensor, shard by shard in the index's order, each in its file's order.</summary>
    public IEnumerable<string> Names => files.SelectMany(f => f.Names);
    public bool Contains(string name) => _fileOf.ContainsKey(name);
    public SafeTensorInfo Info(string name) => _fileOf[name].Info(name);
    public SafeTensorsFile FileOf(string name) => _fileOf[name];

    private static Dictionary<string, SafeTensorsFile> Index(IReadOnlyList<SafeTensorsFile> files)
    {
        var map = new Dictionary<string, SafeTensorsFile>();
        foreach (var f in files)
            foreach (string n in f.Names)
                if (!map.TryAdd(n, f))
                    throw new InvalidDataException($"tensor '{n}' is in two shards, {map[n].Path} and {f.Path}");
        return map;
    }

    public static CheckpointTensors Open(string folder)
    {
        string single = System.IO.Path.Combine(folder, Checkpoint.ModelFile), index = System.IO.Path.Combine(folder, Checkpoint.IndexFile);
        if (File.Exists(single)) return new([SafeTensorsFile.Read(single)], owned: true);
        var map = ReadIndex(index);
        var opened = new List<SafeTensorsFile>();
        try
        {
            foreach (string shard in map.Values.Distinct())
            {
                string file = System.IO.Path.Combine(folder, shard);
                if (!File.Exists(file)) throw new FileNotFoundException($"{index} names shard \"{shard}\", but {file} does not exist", file);
                opened.Add(SafeTensorsFile.Read(file));
            }
            foreach (var f in opened)
                foreach (string n in f.Names)
                    if (!map.TryGetValue(n, out var listed) || listed != System.IO.Path.GetFileName(f.Path))
                        throw new InvalidDataException($"{f.Path}: tensor '{n}' is {(listed is null ? "not in" : $"given to {listed} by")} {index}");
            var tensors = new CheckpointTensors(opened, owned: true, index);
            foreach (var (n, shard) in map)
                if (!tensors.Contains(n)) throw new InvalidDataException($"{index} puts tensor '{n}' in {shard}, which does not hold it");
            return tensors;
        }
        catch
        {
            foreach (var f in opened) f.Dispose();
            throw;
        }
    }

    /// <summary>weight_map of the index, each shard a plain file name in the folder.</summary>
    private static Dictionary<string, string> ReadIndex(string index)
    {
        System.Text.Json.JsonDocument doc;
        try { doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(index)); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{index}: not valid JSON: {e.Message}", e); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var wm)
                || wm.ValueKind != System.Text.Json.JsonValueKind.Object)
                throw new InvalidDataException($"{index}: no \"weight_map\" object");
            var map = new Dictionary<string, string>();
            foreach (var e in wm.EnumerateObject())
            {
                string? shard = e.Value.ValueKind == System.Text.Json.JsonValueKind.String ? e.Value.GetString() : null;
                if (shard is null || shard.Length == 0 || shard != System.IO.Path.GetFileName(shard) || shard is "." or "..")
                    throw new InvalidDataException($"{index}: weight_map[\"{e.Name}\"] is {e.Value.GetRawText()}, not a file name in the folder");
                map[e.Name] = shard;
            }
            if (map.Count == 0) throw new InvalidDataException($"{index}: weight_map is empty");
            return map;
        }
    }

    public void Dispose()
    {
        if (owned) foreach (var f in files) f.Dispose();
    }
}

/// <summary>What <see cref="Checkpoint.LoadModel"/> returns: the resolved folder, its config, the filled parameters.</summary>
public sealed record LoadedModel(string Folder, HfConfig Config, ParameterSet Parameters);
