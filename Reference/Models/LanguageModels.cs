using System.Text.Json;
using Llm.Tensors;

namespace Llm.Models;

/// <summary>Every kind of model by preset name and from a checkpoint folder: decoder-only presets
/// (<see cref="DecoderConfig.PresetNames"/>) and encoder-decoder ones (<see cref="EncoderDecoderConfig.PresetNames"/>).</summary>
public static class LanguageModels
{
    public static IReadOnlyList<string> PresetNames { get; } = [.. DecoderConfig.PresetNames, .. EncoderDecoderConfig.PresetNames];

    public static bool IsEncoderDecoder(string preset) => EncoderDecoderConfig.IsPreset(preset);

    /// <summary>A new model of <paramref name="preset"/> with <paramref name="vocabSize"/> (the tokenizer's), weights not yet initialised.</summary>
    public static ILanguageModel Create(IBackend backend, string preset, int? vocabSize = null)
    {
        if (EncoderDecoderConfig.IsPreset(preset))
        {
            var t5 = EncoderDecoderConfig.FromPreset(preset);
            return new EncoderDecoder(backend, vocabSize is { } n ? t5 with { VocabSize = n } : t5);
        }
        var config = DecoderConfig.FromPreset(preset);
        return new Decoder(backend, vocabSize is { } v ? config with { VocabSize = v } : config);
    }

    /// <summary>A checkpoint folder (or anything <see cref="IO.Checkpoint.ResolveModelFolder"/> takes) with its tokenizer
    /// name: config.json's model_type "t5" is an <see cref="EncoderDecoder"/>, anything else a <see cref="Decoder"/>.</summary>
    public static (ILanguageModel Model, string? Tokenizer) Load(string path, IBackend backend, Func<string, bool>? frozen = null)
    {
        string folder = IO.Checkpoint.ResolveModelFolder(path);
        if (ModelType(folder) == "t5")
        {
            var (config, parameters, _, tokenizer) = IO.T5Checkpoint.Load(folder, backend, frozen);
            return (new EncoderDecoder(config, parameters), tokenizer);
        }
        var (model, name) = Decoder.Load(folder, backend, frozen);
        return (model, name);
    }

    /// <summary>Whether a config.json describes an encoder-decoder (model_type "t5").</summary>
    public static bool IsEncoderDecoderConfig(string configPath) => ModelTypeOf(configPath) == "t5";

    /// <summary>config.json's model_type, or null (no config.json: Meta's layout; unreadable: the loader says why).</summary>
    private static string? ModelType(string folder) => ModelTypeOf(Path.Combine(folder, IO.Checkpoint.ConfigFile));

    private static string? ModelTypeOf(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            return json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty("model_type", out var type)
                && type.ValueKind == JsonValueKind.String ? type.GetString() : null;
        }
        catch (JsonException) { return null; }   // the family's own parser reports the malformed file with its position
    }
}
