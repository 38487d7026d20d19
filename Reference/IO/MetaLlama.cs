using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Llm.Cpu;
using Llm.Models;
using Llm.Tensors;

namespace Llm.IO;

/// <summary>
/// Meta's own LLaMA layout (llama/model.py, the folders Meta distributes): <c>params.json</c> and the weights in
/// <c>consolidated.safetensors</c> or the model-parallel shards <c>consolidated.00.safetensors</c>, <c>.01</c>, … under
/// Meta's names (tok_embeddings, layers.{l}.attention.wq, feed_forward.w1, …). Loaded by converting in memory to the
/// Hugging Face LLaMA naming, as transformers' convert_llama_weights_to_hf.py does; so a Meta folder loads as a Hugging
/// Face LLaMA and saves as one (config.json + model.safetensors), never back in Meta's layout.
/// <para>Meta's rotary embedding turns interleaved pairs (2i, 2i+1) of each head (a complex product with freqs_cis),
/// HF's and this library's turn halves (i, i + hs/2): the rows of wq and wk are permuted per head
/// (<see cref="RopeKernel.InterleavedToHalf"/>), which makes q·k and hence the model the same function.</para>
/// </summary>
public static class MetaLlama
{
    public const string ParamsFile = "params.json";

    /// <summary>A folder with params.json and no config.json: HF's config.json wins where a converted folder kept both.</summary>
    public static bool IsMetaFolder(string folder) =>
        File.Exists(Path.Combine(folder, ParamsFile)) && !File.Exists(Path.Combine(folder, Checkpoint.ConfigFile));

    private static readonly HashSet<string> KnownFields =
        ["dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "multiple_of", "ffn_dim_multiplier", "norm_eps", "rope_theta",
         "max_seq_len", "max_batch_size", "use_scaled_rope"];

    /// <summary>llama/model.py FeedForward: hidden = 4·dim; int(2·hidden/3); int(multiplier·hidden); rounded up to multiple_of.</summary>
    public static int FfnWidth(int dim, int multipleOf, double? multiplier)
    {
        int hidden = 4 * dim;
        hidden = (int)(2.0 * hidden / 3);
        if (multiplier is { } m) hidden = (int)(m * hidden);
        return multipleOf * ((hidden + multipleOf - 1) / multipleOf);
    }

    /// <summary>params.json → the HF LLaMA config it converts to. <paramref name="embeddingRows"/> stands in for
    /// vocab_size −1, which Meta's first releases wrote (the tokenizer decides it there).</summary>
    public static DecoderConfig ParseParams(string json, string source, int? embeddingRows = null)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON: {e.Message}", e); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{source}: a JSON {root.ValueKind}, expected an object");
            foreach (var p in root.EnumerateObject())
                if (!KnownFields.Contains(p.Name))
                    throw new InvalidDataException($"{source}: field \"{p.Name}\" is not a field of Meta's LLaMA ModelArgs understood here (known: {string.Join(", ", KnownFields)})");
            // Llama 3.1's use_scaled_rope rescales the low frequencies (apply_scaling): another function
            if (root.TryGetProperty("use_scaled_rope", out var scaled) && scaled.ValueKind != JsonValueKind.False && scaled.ValueKind != JsonValueKind.Null)
                throw new InvalidDataException($"{source}: use_scaled_rope {scaled.GetRawText()} is not supported (the rotary frequencies here are θ^(−2i/hs), unscaled)");

            int dim = Int(root, "dim", source), heads = Int(root, "n_heads", source);
            int kv = OptionalInt(root, "n_kv_heads", source) ?? heads;
            int vocab = Int(root, "vocab_size", source);
            if (vocab == -1 && embeddingRows is { } rows) vocab = rows;
            int multipleOf = Int(root, "multiple_of", source);
            if (multipleOf <= 0) throw new InvalidDataException($"{source}: multiple_of {multipleOf} must be positive");
            double? multiplier = Number(root, "ffn_dim_multiplier", source, required: false);
            if (multiplier is <= 0) throw new InvalidDataException($"{source}: ffn_dim_multiplier {multiplier} must be positive");
            var config = new DecoderConfig
            {
                VocabSize = vocab,
                ContextLength = OptionalInt(root, "max_seq_len", source) ?? 2048,   // ModelArgs' default
                Layers = Int(root, "n_layers", source),
                Heads = heads,
                KvHeads = kv == heads ? null : kv,
                Channels = dim,
                Hidden = FfnWidth(dim, multipleOf, multiplier),
                LayerNormEpsilon = (float)Number(root, "norm_eps", source, required: true)!.Value,
                Norm = NormKind.RmsNorm,
                Bias = false,
                Activation = Activation.SwiGlu,                // w2(silu(w1 x) ⊙ w3 x)
                Positions = PositionKind.Rope,
                RopeTheta = (float)(Number(root, "rope_theta", source, required: false) ?? 10000),
                TiedEmbeddings = false,                        // Meta's output is its own matrix
                Naming = WeightNaming.Llama,
            };
            try { return config.Validate(); }
            catch (ArgumentException e) { throw new InvalidDataException($"{source}: {e.Message}", e); }
        }
    }

    private static int Int(JsonElement root, string field, string source) =>
        OptionalInt(root, field, source) ?? throw new InvalidDataException($"{source}: missing required field \"{field}\"");

    private static int? OptionalInt(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int value))
            throw new InvalidDataException($"{source}: field \"{field}\" is {e.GetRawText()}, not an integer");
        return value;
    }

    private static double? Number(JsonElement root, string field, string source, bool required)
    {
        if (!root.TryGetProperty(field, out var e) || e.ValueKind == JsonValueKind.Null)
            return required ? throw new InvalidDataException($"{source}: missing required field \"{field}\"") : null;
        return e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double value) && double.IsFinite(value) ? value
            : throw new InvalidDataException($"{source}: field \"{field}\" is {e.GetRawText()}, not a number");
    }

    private static readonly Regex Shard = new(@"^consolidated(?:\.(\d+))?\.safetensors$", RegexOptions.CultureInvariant);

    /// <summary>consolidated.safetensors, or consolidated.00 … consolidated.NN (numbered from 0 without a gap).</summary>
    public static IReadOnlyList<string> ShardFiles(string folder)
    {
        var found = Directory.EnumerateFiles(folder).Select(f => (File: f, Match: Shard.Match(Path.GetFileName(f)))).Where(x => x.Match.Success).ToList();
        if (found.Count == 0)
        {
            string? pickled = Directory.EnumerateFiles(folder, "*.pth").Order(StringComparer.Ordinal).FirstOrDefault();
            if (pickled is not null)
                throw new NotSupportedException($"{pickled}: a pickled PyTorch checkpoint is not read here (unpickling runs arbitrary code); convert it to safetensors first, e.g. safetensors.torch.save_file(torch.load(\"{Path.GetFileName(pickled)}\", weights_only=True), \"{Path.ChangeExtension(Path.GetFileName(pickled), ".safetensors")}\")");
            throw new FileNotFoundException($"{folder}: has {ParamsFile} but no consolidated.safetensors or consolidated.00.safetensors");
        }
        if (found.Count == 1 && !found[0].Match.Groups[1].Success) return [found[0].File];
        if (found.Any(x => !x.Match.Groups[1].Success))
            throw new InvalidDataException($"{folder}: both consolidated.safetensors and numbered consolidated.NN.safetensors shards: which is the model is unclear");
        var numbered = found.OrderBy(x => int.Parse(x.Match.Groups[1].ValueSpan, CultureInfo.InvariantCulture)).ToList();
        for (int i = 0; i < numbered.Count; i++)
            if (int.Parse(numbered[i].Match.Groups[1].ValueSpan, CultureInfo.InvariantCulture) != i)
                throw new InvalidDataException($"{folder}: model-parallel shards must be numbered 0 … {numbered.Count - 1}; found {Path.GetFileName(numbered[i].File)} at position {i}");
        return numbered.Select(x => x.File).ToList();
    }

    /// <summary>Loads a Meta folder onto <paramref name="backend"/> as the HF LLaMA it converts to.</summary>
    public static LoadedModel Load(string folder, IBackend backend, Func<string, bool>? frozen = null)
    {
        string paramsPath = Path.Combine(folder, ParamsFile);
        var files = new List<SafeTensorsFile>();
        try
        {
            foreach (string f in ShardFiles(folder)) files.Add(SafeTensorsFile.Read(f));
            int? rows = files[0].Names.Contains("tok_embeddings.weight") ? files[0].Info("tok_embeddings.weight").Shape[0] : null;
            var config = ParseParams(File.ReadAllText(paramsPath), paramsPath, rows);
            var parameters = new ParameterSet(backend, config.ParameterSpecs(), frozen: frozen);
            Fill(files, config, parameters);
            return new LoadedModel(folder, new HfConfig(config, null), parameters);
        }
        finally
        {
            foreach (var f in files) f.Dispose();
        }
    }

    /// <summary>Meta name → (HF LLaMA name, whether its rows are permuted to rotate halves and with how many heads).</summary>
    public static IEnumerable<(string Meta, string Hf, int? PermuteHeads)> NameMap(DecoderConfig c)
    {
        var names = LlamaNames.Instance;
        yield return ("tok_embeddings.weight", names.TokenEmbedding, null);
        for (int l = 0; l < c.Layers; l++)
        {
            var b = names.Block(c, l);
            string m = $"layers.{l}.";
            yield return (m + "attention.wq.weight", b.Query + ".weight", c.Heads);
            yield return (m + "attention.wk.weight", b.Key + ".weight", c.KeyValueHeads);
            yield return (m + "attention.wv.weight", b.Value + ".weight", null);
            yield return (m + "attention.wo.weight", b.Out + ".weight", null);
            yield return (m + "feed_forward.w1.weight", b.Gate + ".weight", null);   // w1 is the gate: silu(w1 x)
            yield return (m + "feed_forward.w3.weight", b.Up + ".weight", null);
            yield return (m + "feed_forward.w2.weight", b.Down + ".weight", null);
            yield return (m + "attention_norm.weight", b.Norm1 + ".weight", null);
            yield return (m + "ffn_norm.weight", b.Norm2 + ".weight", null);
        }
        yield return ("norm.weight", names.FinalNorm + ".weight", null);
        yield return ("output.weight", names.LmHead, null);
    }

    private static void Fill(IReadOnlyList<SafeTensorsFile> files, DecoderConfig config, ParameterSet parameters)
    {
        var map = NameMap(config).ToList();
        var known = map.Select(x => x.Meta).ToHashSet();
        foreach (var f in files)
            foreach (string n in f.Names)
                if (!known.Contains(n) && n != "rope.freqs")   // rope.freqs: θ^(−2i/hs), a constant recomputed here
                    throw new InvalidDataException($"{f.Path}: unexpected tensor '{n}' {Tensor.ShapeString(f.Info(n).Shape)}: not a weight of this Meta LLaMA configuration ({ParamsFile} says n_layers {config.Layers})");
        foreach (var (meta, hf, permuteHeads) in map)
        {
            var p = parameters[hf].Value;
            var values = Gather(files, meta, p.Shape);
            if (permuteHeads is { } heads)
            {
                var permuted = new float[values.Length];
                RopeKernel.InterleavedToHalf(values, permuted, heads, config.HeadSize, config.Channels);
                values = permuted;
            }
            switch (p.DType)
            {
                case DType.F32: p.Backend.Upload<float>(values, p); break;
                case DType.F64: p.Backend.Upload<double>(values.Select(v => (double)v).ToArray(), p); break;
                default: throw new NotSupportedException($"loading into {p.Describe()}: only F32 and F64 destinations are supported");
            }
        }
    }

    /// <summary>One Meta tensor of <paramref name="shape"/>: from the one file, or joined from the model-parallel shards
    /// as convert_llama_weights_to_hf.py joins them: along the axis where the shards' slices add up to the full shape
    /// (wq, wk, wv, w1, w3, output along their rows, wo and w2 along their columns, tok_embeddings along either as the
    /// release split it), or, where every shard holds the full shape (the norms), the first shard's copy.</summary>
    private static float[] Gather(IReadOnlyList<SafeTensorsFile> files, string name, int[] shape)
    {
        var infos = new List<SafeTensorInfo>();
        foreach (var f in files)
        {
            if (!f.Names.Contains(name))
                throw new InvalidDataException($"{f.Path}: missing tensor '{name}' (expected {Tensor.ShapeString(shape)})");
            var info = f.Info(name);
            if (info.DType is not (DType.F32 or DType.F16 or DType.BF16 or DType.F64))
                throw new InvalidDataException($"{f.Path}: tensor '{name}' has dtype {info.DTypeName}, expected a float type (F32, F16, BF16 or F64)");
            infos.Add(info);
        }
        float[] Read(int i)
        {
            var v = new float[infos[i].ElementCount];
            files[i].ReadFloat(name, v);
            return v;
        }
        string Shapes() => string.Join(", ", infos.Select((x, i) => $"{Path.GetFileName(files[i].Path)} {Tensor.ShapeString(x.Shape)}"));
        if (infos.All(x => x.Shape.SequenceEqual(shape))) return Read(0);
        if (files.Count == 1)
            throw new InvalidDataException($"{files[0].Path}: tensor '{name}' has shape {Tensor.ShapeString(infos[0].Shape)}, {ParamsFile} implies {Tensor.ShapeString(shape)}");
        for (int axis = 0; axis < shape.Length; axis++)
        {
            bool fits = infos.All(x => x.Shape.Length == shape.Length && Enumerable.Range(0, shape.Length).All(d => d == axis || x.Shape[d] == shape[d]))
                && infos.Sum(x => (long)x.Shape[axis]) == shape[axis];
            if (!fits) continue;
            var whole = new float[Tensor.ElementCount(shape)];
            int inner = 1;   // elements after the axis: a row of the slice along it
            for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
            int outer = whole.Length / (shape[axis] * inner), offset = 0;
            for (int i = 0; i < files.Count; i++)
            {
                var part = Read(i);
                int width = infos[i].Shape[axis] * inner;
                for (int o = 0; o < outer; o++)
                    part.AsSpan(o * width, width).CopyTo(whole.AsSpan(o * shape[axis] * inner + offset, width));
                offset += width;
            }
            return whole;
        }
        throw new InvalidDataException($"tensor '{name}': the shards' shapes ({Shapes()}) neither equal nor join along one axis into the {Tensor.ShapeString(shape)} that {ParamsFile} implies");
    }
}
