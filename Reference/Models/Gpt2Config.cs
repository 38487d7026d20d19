namespace Llm.Models;

/// <summary>GPT-2 hyper-parameters, named as in Hugging Face's GPT2Config where one exists.</summary>
public sealed record Gpt2Config
{
    public int VocabSize { get; init; } = 50257;     // n_vocab: 50,000 BPE merges + 256 bytes + <|endoftext|>
    public int ContextLength { get; init; } = 1024;  // n_positions: rows of the learned position table
    public int Layers { get; init; } = 12;           // n_layer
    public int Heads { get; init; } = 12;            // n_head; Channels must divide by it
    public int Channels { get; init; } = 768;        // n_embd
    public float LayerNormEpsilon { get; init; } = 1e-5f;  // layer_norm_epsilon, as GPT-2

    /// <summary>124M parameters: the smallest released GPT-2.</summary>
    public static Gpt2Config Gpt2 { get; } = new();
    /// <summary>A CPU demo and test model: ~0.8M parameters with the byte tokenizer, trains in minutes on 2 cores.</summary>
    public static Gpt2Config Tiny { get; } = new() { VocabSize = 256, ContextLength = 64, Layers = 4, Heads = 4, Channels = 128 };
    /// <summary>Even smaller, for unit tests and gradient checks.</summary>
    public static Gpt2Config Micro { get; } = new() { VocabSize = 256, ContextLength = 16, Layers = 2, Heads = 2, Channels = 16 };

    public static IReadOnlyList<string> PresetNames { get; } = ["gpt2", "tiny", "micro"];

    /// <summary>A preset by name; the vocabulary follows the tokenizer when it is given.</summary>
    public static Gpt2Config FromPreset(string name) => name.ToLowerInvariant() switch
    {
        "gpt2" => Gpt2,
        "tiny" => Tiny,
        "micro" => Micro,
        _ => throw new ArgumentException($"unknown preset '{name}'; known: {string.Join(", ", PresetNames)}"),
    };

    public int HeadSize => Channels / Heads;

    /// <summary>Throws with the offending field when the numbers cannot form a model.</summary>
    public Gpt2Config Validate()
    {
        if (VocabSize <= 0) throw new ArgumentException($"vocab_size must be positive, got {VocabSize}");
        if (ContextLength <= 0) throw new ArgumentException($"n_positions must be positive, got {ContextLength}");
        if (Layers <= 0) throw new ArgumentException($"n_layer must be positive, got {Layers}");
        if (Heads <= 0 || Channels <= 0 || Channels % Heads != 0)
            throw new ArgumentException($"n_embd ({Channels}) must be a positive multiple of n_head ({Heads})");
        if (!(LayerNormEpsilon > 0)) throw new ArgumentException($"layer_norm_epsilon must be positive, got {LayerNormEpsilon}");
        return this;
    }

    /// <summary>The parameter tensors in Hugging Face GPT-2 naming and layout (Conv1D weights are [in, out]).
    /// Decay marks the matrices that AdamW's weight decay applies to.</summary>
    public IEnumerable<ParameterSpec> ParameterSpecs()
    {
        int C = Channels;
        yield return new("wte.weight", [VocabSize, C], Decay: true);   // also the output projection (tied)
        yield return new("wpe.weight", [ContextLength, C], Decay: true);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"h.{l}.";
            yield return new(p + "ln_1.weight", [C], false);
            yield return new(p + "ln_1.bias", [C], false);
            yield return new(p + "attn.c_attn.weight", [C, 3 * C], true);
            yield return new(p + "attn.c_attn.bias", [3 * C], false);
            yield return new(p + "attn.c_proj.weight", [C, C], true);
            yield return new(p + "attn.c_proj.bias", [C], false);
            yield return new(p + "ln_2.weight", [C], false);
            yield return new(p + "ln_2.bias", [C], false);
            yield return new(p + "mlp.c_fc.weight", [C, 4 * C], true);
            yield return new(p + "mlp.c_fc.bias", [4 * C], false);
            yield return new(p + "mlp.c_proj.weight", [4 * C, C], true);
            yield return new(p + "mlp.c_proj.bias", [C], false);
        }
        yield return new("ln_f.weight", [C], false);
        yield return new("ln_f.bias", [C], false);
    }

    public long ParameterCount() => ParameterSpecs().Sum(s => (long)Tensors.Tensor.ElementCount(s.Shape));
}

/// <summary>Name, shape and weight-decay flag of one parameter tensor.</summary>
public sealed record ParameterSpec(string Name, int[] Shape, bool Decay);
