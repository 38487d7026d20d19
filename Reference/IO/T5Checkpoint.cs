using System.Text.RegularExpressions;
using Llm.Models;
using Llm.Tensors;

namespace Llm.IO;

/// <summary>
/// Encoder-decoder model folders as T5ForConditionalGeneration's save_pretrained writes them: config.json (T5Config,
/// see <see cref="T5HfConfig"/>) + model.safetensors, or shards with model.safetensors.index.json, every parameter
/// under its HF name in nn.Linear [out, in] layout (<see cref="EncoderDecoderConfig.Weights"/>). The folder machinery
/// (run folders, latest, shards, corrupt-file refusal) is <see cref="Checkpoint"/>'s.
/// </summary>
public static class T5Checkpoint
{
    public const string Embedding = "shared.weight";
    public const string Head = "lm_head.weight";

    /// <summary>T5's three names of the one embedding tensor: T5ForConditionalGeneration ties encoder.embed_tokens and
    /// decoder.embed_tokens to shared; save_pretrained drops the copies, but older saves (and t5-small's own file) keep them.</summary>
    public static IReadOnlyList<string> EmbeddingAliases { get; } = [Embedding, "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"];

    /// <summary>Checkpoints converted from Mesh TensorFlow hold a relative bias for the first cross-attention, which
    /// T5 never uses (cross-attention has no position bias): T5ForConditionalGeneration's
    /// _keys_to_ignore_on_load_unexpected skips it, and so does this loader.</summary>
    public const string UnusedCrossBias = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight";

    /// <summary>Writes model.safetensors (shared.weight only; lm_head.weight only when untied, as save_pretrained) and config.json.</summary>
    public static void Save(string folder, T5HfConfig config, ParameterSet parameters) => Checkpoint.SaveModel(folder, config, parameters);

    /// <summary>Loads config and weights from anything <see cref="Checkpoint.ResolveModelFolder"/> accepts.
    /// Tokenizer: the folder's tokenizer file (<see cref="Text.Tokenizers.InFolder"/>: tokenizer.model, spiece.model,
    /// tokenizer.json), else config.json's llm_tokenizer, else null.</summary>
    /// <param name="frozen">Names the parameters not to train (no gradient, no optimizer state); default none.</param>
    public static (EncoderDecoderConfig Config, ParameterSet Parameters, string Folder, string? Tokenizer) Load(string path, IBackend backend,
        Func<string, bool>? frozen = null)
    {
        string folder = Checkpoint.ResolveModelFolder(path);
        string configPath = Path.Combine(folder, Checkpoint.ConfigFile);
        var config = T5HfConfig.Load(configPath);
        using var tensors = CheckpointTensors.Open(folder);
        CheckConfigAgainstWeights(tensors, config.Model, configPath);
        var parameters = new ParameterSet(backend, config.Model.ParameterSpecs(), frozen: frozen);
        LoadWeights(tensors, config.Model, parameters);
        return (config.Model, parameters, folder, Text.Tokenizers.ForFolder(folder, config.Tokenizer));
    }

    /// <summary>Fills every parameter from <paramref name="tensors"/>. shared.weight may come under any of
    /// <see cref="EmbeddingAliases"/>; when several are present they must hold the same floats. A tied model's
    /// lm_head.weight, when present, must equal the embedding (tied: the head is shared.weight·d^−½). Anything else,
    /// missing, misshapen or of a non-float dtype, is an error naming the tensor and its file.</summary>
    internal static void LoadWeights(CheckpointTensors tensors, EncoderDecoderConfig config, ParameterSet parameters)
    {
        var source = new Dictionary<string, string>(); // parameter name → name in the file
        var embeddings = new List<string>();
        string? tiedHead = null;
        int[] embeddingShape = [config.VocabSize, config.Channels];
        foreach (string name in tensors.Names)
        {
            if (EmbeddingAliases.Contains(name))
            {
                var shape = tensors.Info(name).Shape;
                if (!shape.SequenceEqual(embeddingShape))
                    throw new InvalidDataException($"{tensors.FileOf(name)}: tensor '{name}' has shape {Tensor.ShapeString(shape)}, the model expects {Embedding} {Tensor.ShapeString(embeddingShape)} (vocab_size, d_model)");
                embeddings.Add(name);
                continue;
            }
            if (name == Head && config.TiedEmbeddings)
            {
                var shape = tensors.Info(name).Shape;
                if (!shape.SequenceEqual(embeddingShape))
                    throw new InvalidDataException($"{tensors.FileOf(name)}: tensor '{name}' has shape {Tensor.ShapeString(shape)}, not {Embedding}'s {Tensor.ShapeString(embeddingShape)}, but tie_word_embeddings is true");
                tiedHead = name;
                continue;
            }
            if (name == UnusedCrossBias) continue;
            if (!parameters.Contains(name))
                throw new InvalidDataException($"{tensors.FileOf(name)}: unexpected tensor '{name}' {Tensor.ShapeString(tensors.Info(name).Shape)}: not a parameter of this T5 configuration");
            source[name] = name;
        }
        if (embeddings.Count > 0) source[Embedding] = embeddings[0];
        var missing = parameters.All.Where(p => !source.ContainsKey(p.Name)).Select(p =>
            p.Name == Embedding ? $"'{Embedding}' (nor encoder.embed_tokens.weight, decoder.embed_tokens.weight)"
            : p.Name == Head ? $"'{Head}' (tie_word_embeddings is false: the untied head is its own tensor)"
            : $"'{p.Name}'").ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{tensors.Path}: missing tensor{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? $" and {missing.Count - 8} more" : "")}");

        foreach (string alias in embeddings.Skip(1))
            if (!Checkpoint.SameValues(tensors, embeddings[0], alias))
                throw new InvalidDataException($"{tensors.FileOf(alias)}: tensor '{alias}' differs from '{embeddings[0]}': T5 ties them (one embedding, {Embedding}), so a checkpoint must hold one tensor under both names");
        if (tiedHead is not null && !Checkpoint.SameValues(tensors, tiedHead, embeddings[0]))
            throw new InvalidDataException($"{tensors.FileOf(tiedHead)}: tensor '{tiedHead}' differs from '{embeddings[0]}', but tie_word_embeddings is true: an untied head needs tie_word_embeddings false in config.json");

        foreach (var p in parameters.All)
        {
            var info = tensors.Info(source[p.Name]);
            if (!info.Shape.SequenceEqual(p.Shape))
                throw new InvalidDataException($"{tensors.FileOf(info.Name)}: tensor '{info.Name}' has shape {Tensor.ShapeString(info.Shape)}, the model expects {p.Value.Describe()}");
            Checkpoint.ReadInto(tensors.FileOf(info.Name), info, p.Value);
        }
    }

    /// <summary>The numbers config.json promises against what the weights contain, each message naming the config
    /// field and the tensor, so that a wrong config is reported as such rather than as a shape mismatch further down.</summary>
    private static void CheckConfigAgainstWeights(CheckpointTensors tensors, EncoderDecoderConfig config, string configPath)
    {
        SafeTensorInfo? Find(string name) => tensors.Contains(name) ? tensors.Info(name) : null;
        string Says(string what) => $"{configPath} says {what}";

        if (EmbeddingAliases.Select(Find).FirstOrDefault(i => i is not null) is { } shared && !shared.Shape.SequenceEqual([config.VocabSize, config.Channels]))
            throw new InvalidDataException($"{Says($"vocab_size {config.VocabSize}, d_model {config.Channels}")}, but {tensors.FileOf(shared.Name)} has {shared.Name} {Tensor.ShapeString(shared.Shape)}");

        foreach (var (stack, field, expected) in new[] { ("encoder", "num_layers", config.EncoderLayers), ("decoder", "num_decoder_layers", config.DecoderLayers) })
        {
            var block = new Regex($@"^{stack}\.block\.(\d+)\.");
            int layers = tensors.Names.Select(n => block.Match(n)).Where(m => m.Success)
                .Select(m => int.TryParse(m.Groups[1].ValueSpan, out int l) ? l + 1 : int.MaxValue).DefaultIfEmpty(0).Max();
            if (layers != expected)
                throw new InvalidDataException($"{Says($"{field} {expected}")}, but {tensors.Path} has {(layers == 0 ? $"no {stack}.block.* tensors" : $"blocks {stack}.block.0 .. {stack}.block.{layers - 1} ({layers} layers)")}");
        }

        const string attention = "encoder.block.0.layer.0.SelfAttention.";
        if (Find(attention + "relative_attention_bias.weight") is { } bias && !bias.Shape.SequenceEqual([config.RelativeBuckets, config.Heads]))
            throw new InvalidDataException($"{Says($"relative_attention_num_buckets {config.RelativeBuckets}, num_heads {config.Heads}")}, but {tensors.FileOf(bias.Name)} has {bias.Name} {Tensor.ShapeString(bias.Shape)}");
        if (Find(attention + "q.weight") is { } q && !q.Shape.SequenceEqual([config.InnerWidth, config.Channels]))
            throw new InvalidDataException($"{Says($"num_heads {config.Heads} · d_kv {config.HeadSize} = {config.InnerWidth}, d_model {config.Channels}")}, but {tensors.FileOf(q.Name)} has {q.Name} {Tensor.ShapeString(q.Shape)}");

        // MoE blocks (Switch): where moe says, block l's FFN is …mlp.router.classifier.weight [E, C] and the stacked
        // experts, elsewhere DenseReluDense; a file of the other kind is refused here, naming the tensor and the field
        foreach (var (stack, layers, ffnIndex) in new[] { ("encoder", config.EncoderLayers, 1), ("decoder", config.DecoderLayers, 2) })
            for (int l = 0; l < layers; l++)
            {
                string prefix = $"{stack}.block.{l}.layer.{ffnIndex}.";
                var router = Find(prefix + "mlp.router.classifier.weight");
                var dense = Find(prefix + "DenseReluDense.wi.weight") ?? Find(prefix + "DenseReluDense.wi_0.weight") ?? Find(prefix + "DenseReluDense.wo.weight");
                if (config.Moe is { } moe && moe.IsMoeLayer(l))
                {
                    if (dense is not null)
                        throw new InvalidDataException($"{Says($"moe (experts {moe.Experts}, every {moe.Every}): {stack} block {l}'s FFN is a mixture of experts")}, but {tensors.FileOf(dense.Name)} has the dense {dense.Name}");
                    if (router is not null && !router.Shape.SequenceEqual([moe.Experts, config.Channels]))
                        throw new InvalidDataException($"{Says($"moe.experts {moe.Experts}, d_model {config.Channels}")}, but {tensors.FileOf(router.Name)} has {router.Name} {Tensor.ShapeString(router.Shape)}");
                }
                else if (router is not null)
                    throw new InvalidDataException($"{Says(config.Moe is { } m ? $"moe every {m.Every}: {stack} block {l}'s FFN is dense" : "no moe (every FFN dense)")}, but {tensors.FileOf(router.Name)} has the MoE router {router.Name}");
            }

        const string ffn = "encoder.block.0.layer.1.DenseReluDense.";
        string proj = config.Gated ? "gated (wi_0, wi_1)" : "not gated (one wi)";
        if (!config.Gated && Find(ffn + "wi_0.weight") is { } wi0)
            throw new InvalidDataException($"{Says($"a feed_forward_proj that is {proj}")}, but {tensors.FileOf(wi0.Name)} has {wi0.Name}: a gated FFN's (feed_forward_proj \"gated-...\")");
        if (config.Gated && Find(ffn + "wi.weight") is { } wi1)
            throw new InvalidDataException($"{Says($"a feed_forward_proj that is {proj}")}, but {tensors.FileOf(wi1.Name)} has {wi1.Name}: an FFN that is not gated");
        if (Find(ffn + (config.Gated ? "wi_0.weight" : "wi.weight")) is { } wi && !wi.Shape.SequenceEqual([config.Hidden, config.Channels]))
            throw new InvalidDataException($"{Says($"d_ff {config.Hidden}, d_model {config.Channels}")}, but {tensors.FileOf(wi.Name)} has {wi.Name} {Tensor.ShapeString(wi.Shape)}");
    }
}
