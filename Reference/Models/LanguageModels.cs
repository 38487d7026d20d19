using Llm.Tensors;

namespace Llm.Models;

/// <summary>Every kind of model by preset name and from a checkpoint folder: decoder-only presets
/// (<see cref="DecoderConfig.PresetNames"/>) and encoder-decoder ones (<see cref="EncoderDecoderConfig.PresetNames"/>).</summary>
public static class LanguageModels
{
    public static IReadOnlyList<string> PresetNames { get; } = [.. DecoderConfig.PresetNames, .. EncoderDecoderConfig.PresetNames];

    /// <summary>A new model of <paramref name="preset"/> with <paramref name="vocabSize"/> (the tokenizer's), weights not yet initialised.</summary>
    public static ILanguageModel Create(IBackend backend, string preset, int? vocabSize = null)
    {
        if (EncoderDecoderConfig.IsPreset(preset))
            throw new NotSupportedException($"preset '{preset}' is an encoder-decoder, which this build cannot create yet");
        var config = DecoderConfig.FromPreset(preset);
        return new Decoder(backend, vocabSize is { } v ? config with { VocabSize = v } : config);
    }

    /// <summary>A checkpoint folder (or anything <see cref="IO.Checkpoint.ResolveModelFolder"/> takes) with its tokenizer name.</summary>
    public static (ILanguageModel Model, string? Tokenizer) Load(string path, IBackend backend, Func<string, bool>? frozen = null)
    {
        var (model, tokenizer) = Decoder.Load(path, backend, frozen);
        return (model, tokenizer);
    }
}
