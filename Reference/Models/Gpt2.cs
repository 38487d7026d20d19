using Llm.Autograd;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Models;

/// <summary>
/// GPT-2 (Radford et al. 2019): learned token and position embeddings, pre-LayerNorm transformer blocks with causal
/// self-attention and a GeLU MLP, a final LayerNorm, and an output projection tied to the token embedding.
/// Shapes: B batch, T time, C channels, V vocabulary, NH heads.
/// </summary>
public sealed class Gpt2
{
    public Gpt2Config Config { get; }
    public IBackend Backend { get; }
    public ParameterSet Parameters { get; }
    private Tensor? _positions;  // [B, T] I32: 0..T-1 in every row, the ids of the learned position embedding

    /// <summary>A LayerNorm's gain and bias, [C] each.</summary>
    public sealed record Norm(Var Weight, Var Bias);
    /// <summary>A Conv1D-style linear layer: weight [in, out], bias [out].</summary>
    public sealed record Linear(Var Weight, Var Bias);
    /// <summary>One transformer block's parameters, as Hugging Face names them under h.{l}.</summary>
    public sealed record Block(Norm Ln1, Linear Qkv, Linear AttnProj, Norm Ln2, Linear Fc, Linear MlpProj);

    /// <summary>wte [V, C] (also the tied output projection), wpe [ctx, C].</summary>
    public Var TokenEmbedding { get; }
    public Var PositionEmbedding { get; }
    public IReadOnlyList<Block> Blocks { get; }
    public Norm FinalNorm { get; }

    public Gpt2(IBackend backend, Gpt2Config config, DType dtype = DType.F32)
        : this(config, new ParameterSet(backend, config.Validate().ParameterSpecs(), dtype)) { }

    /// <summary>A model around parameters that already exist (loaded from a checkpoint).</summary>
    public Gpt2(Gpt2Config config, ParameterSet parameters)
    {
        Config = config.Validate();
        Parameters = parameters;
        Backend = parameters.Backend;
        foreach (var spec in config.ParameterSpecs())
            if (!parameters.Contains(spec.Name) || !parameters[spec.Name].Shape.SequenceEqual(spec.Shape))
                throw new ArgumentException($"parameter set does not fit the config: '{spec.Name}' should be {Tensor.ShapeString(spec.Shape)}");
        // names are looked up once, here; the forward reads typed records
        Var P(string name) => Parameters[name].Var;
        Norm N(string prefix) => new(P(prefix + ".weight"), P(prefix + ".bias"));
        Linear L(string prefix) => new(P(prefix + ".weight"), P(prefix + ".bias"));
        TokenEmbedding = P("wte.weight");
        PositionEmbedding = P("wpe.weight");
        Blocks = [.. Enumerable.Range(0, Config.Layers).Select(l => new Block(N($"h.{l}.ln_1"), L($"h.{l}.attn.c_attn"),
            L($"h.{l}.attn.c_proj"), N($"h.{l}.ln_2"), L($"h.{l}.mlp.c_fc"), L($"h.{l}.mlp.c_proj")))];
        FinalNorm = N("ln_f");
    }

    /// <summary>Loads a checkpoint folder (ours or a Hugging Face GPT-2 download); returns the model and its tokenizer
    /// name (config.json's llm_tokenizer; Hugging Face folders without it use GPT-2 BPE).</summary>
    public static (Gpt2 Model, string Tokenizer) Load(string path, IBackend backend)
    {
        var loaded = IO.Checkpoint.LoadModel(path, backend);
        return (new Gpt2(loaded.Config.Model, loaded.Parameters), loaded.Config.Tokenizer ?? "gpt2");
    }

    /// <summary>tokens [B, T] I32 → logits [B, T, V].</summary>
    public Var Forward(Tape tape, Tensor tokens)
    {
        if (tokens.Rank != 2 || tokens.DType != DType.I32)
            throw new ArgumentException($"GPT-2 expects token ids [B, T] I32, got {tokens.Describe()}");
        int B = tokens.Shape[0], T = tokens.Shape[1];
        if (T > Config.ContextLength)
            throw new ArgumentException($"sequence length {T} exceeds the model's context length {Config.ContextLength}");

        var x = tape.Add(tape.Embedding(TokenEmbedding, tokens), tape.Embedding(PositionEmbedding, Positions(B, T))); // [B, T, C]
        foreach (var block in Blocks)
            x = Forward(tape, x, block);
        x = LayerNorm(tape, x, FinalNorm);
        return tape.MatMul(x, TokenEmbedding, transB: true);  // [B, T, V] = x · wteᵀ: the tied output projection
    }

    /// <summary>x + attn(ln_1(x)), then x + mlp(ln_2(x)): nanoGPT's Block.</summary>
    private Var Forward(Tape tape, Var x, Block block)
    {
        x = tape.Add(x, Attention(tape, LayerNorm(tape, x, block.Ln1), block));
        x = tape.Add(x, Mlp(tape, LayerNorm(tape, x, block.Ln2), block));
        return x;
    }

    private Var LayerNorm(Tape tape, Var x, Norm norm) => tape.LayerNorm(x, norm.Weight, norm.Bias, Config.LayerNormEpsilon);

    private Var Attention(Tape tape, Var x, Block block)
    {
        int B = x.Shape[0], T = x.Shape[1], C = Config.Channels, NH = Config.Heads;
        var qkv = tape.Linear(x, block.Qkv.Weight, block.Qkv.Bias);                // [B, T, 3C]
        Var Heads(int part) => tape.Reshape(tape.Columns(qkv, part * C, C), B, T, NH, C / NH);   // [B, T, NH, hs]
        var y = tape.Attention(Heads(0), Heads(1), Heads(2), AttentionMask.Causal); // [B, T, NH, hs]
        return tape.Linear(tape.Reshape(y, B, T, C), block.AttnProj.Weight, block.AttnProj.Bias); // [B, T, C]
    }

    private Var Mlp(Tape tape, Var x, Block block)
    {
        var h = tape.Gelu(tape.Linear(x, block.Fc.Weight, block.Fc.Bias));          // [B, T, 4C]
        return tape.Linear(h, block.MlpProj.Weight, block.MlpProj.Bias);           // [B, T, C]
    }

    /// <summary>Kept between forwards (training repeats one shape); a new (B, T) gives the old table back first, so
    /// sampling, whose T grows by one per token, holds one table, not one per length.</summary>
    private Tensor Positions(int B, int T)
    {
        if (_positions is { } pos && pos.Shape[0] == B && pos.Shape[1] == T) return pos;
        if (_positions is not null) Backend.Release(_positions);
        _positions = null;
        var ids = new int[B * T];
        for (int i = 0; i < ids.Length; i++) ids[i] = i % T;
        _positions = Backend.Allocate(DType.I32, [B, T], "positions");
        Backend.Upload<int>(ids, _positions);
        return _positions;
    }

    /// <summary>
    /// GPT-2's initialisation: weights ~ N(0, 0.02), the residual projections (c_proj) scaled by 1/√(2·layers) so the
    /// residual stream's variance does not grow with depth, biases 0, LayerNorm gains 1. Deterministic in the seed.
    /// </summary>
    public void InitializeWeights(ulong seed)
    {
        var rng = new Rng(seed);
        // Drawn and uploaded a chunk at a time, in the same order: the same weights as one host array per parameter,
        // without 12 bytes of garbage per parameter (1.5 GB for the 124M model, held by the GC until its next full
        // collection, and counted in the process's peak memory).
        var host = new double[Math.Min(1 << 20, Parameters.All.Max(p => p.Value.Length))];
        var narrow = Parameters.DType == DType.F64 ? null : new float[host.Length];
        foreach (var p in Parameters.All)
        {
            var flat = p.Value.Reshape(p.Value.Length);
            for (int start = 0; start < flat.Length; start += host.Length)
            {
                var chunk = host.AsSpan(0, Math.Min(host.Length, flat.Length - start));
                if (p.Name.EndsWith("ln_1.weight") || p.Name.EndsWith("ln_2.weight") || p.Name == "ln_f.weight")
                    chunk.Fill(1.0);
                else if (p.Decay)
                {
                    double std = p.Name.EndsWith("c_proj.weight") ? 0.02 / Math.Sqrt(2.0 * Config.Layers) : 0.02;
                    for (int i = 0; i < chunk.Length; i++) chunk[i] = std * rng.NextGaussian();
                }
                else chunk.Clear();
                var target = flat.Slice(start, [chunk.Length]);
                if (narrow is null) { Backend.Upload<double>(chunk, target); continue; }
                for (int i = 0; i < chunk.Length; i++) narrow[i] = (float)chunk[i];   // UploadDoubles' rounding, into a reused buffer
                Backend.Upload<float>(narrow.AsSpan(0, chunk.Length), target);
            }
        }
    }
}
