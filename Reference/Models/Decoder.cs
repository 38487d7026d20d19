using Llm.Autograd;
using Llm.Common;
using Llm.Inference;
using Llm.Tensors;
using Llm.Text;

namespace Llm.Models;

/// <summary>Per-forward inputs beyond the tokens: what packing, prefix decoding and a KV cache need. All optional.</summary>
public sealed record DecoderInputs
{
    /// <summary>[B] I32: the bidirectional prefix of each sequence, for <see cref="Visibility.Prefix"/> models (0 when absent).</summary>
    public Tensor? PrefixLengths { get; init; }
    /// <summary>[B, T] I32: document ids of packed sequences; a token sees only its own document.</summary>
    public Tensor? Segments { get; init; }
    /// <summary>[B, T] I32: each token's position (RoPE, learned, sinusoidal; ALiBi uses the mask's offsets); 0..T−1 when absent
    /// (offset by the cache's length when there is one).</summary>
    public Tensor? Positions { get; init; }
    /// <summary>Inference only: the keys and values of the tokens before these, which this forward extends by T positions.
    /// With a cache that keeps segments, <see cref="Segments"/> are the new tokens' and the cache's are the keys'.</summary>
    public KvCache? Cache { get; init; }
    /// <summary>Training only: where this forward's dropout masks come from; none means no dropout.</summary>
    public DropoutStream? Dropout { get; init; }
}

/// <summary>The random stream of one forward's dropout: Philox keyed by the run's seed and the draw (optimizer step ×
/// micro-batches + micro-batch), so a resumed run, and every backend, drops the same elements.</summary>
public readonly record struct DropoutStream(ulong Seed, long Draw)
{
    /// <summary>Philox's key for this draw: distinct draws are distinct keys of the cipher.</summary>
    public ulong Key => Seed ^ (ulong)Draw * 0x9E3779B97F4A7C15UL;
    /// <summary>Each dropout site of the model counts its elements from its own 2⁴⁰: no two sites share a counter.</summary>
    public static long Offset(int site) => (long)site << 40;
}

/// <summary>
/// A decoder-only transformer composed from the catalogue of <see cref="DecoderConfig"/>: GPT-2 is its default, and
/// LLaMA, BLOOM, GPT-NeoX, PaLM and GLM are presets. Shapes: B batch, T time, C channels, V vocabulary, NH query heads,
/// NKV key/value heads, hs head size, F FFN width.
/// </summary>
public sealed class Decoder : ILanguageModel
{
    public DecoderConfig Config { get; }
    public IBackend Backend { get; }
    public ParameterSet Parameters { get; }

    /// <summary>A norm's gain [C] and bias [C] (null for RMSNorm and bias-free LayerNorm).</summary>
    public sealed record Norm(Var Weight, Var? Bias);
    /// <summary>A linear layer: weight [in, out] (Conv1D) or [out, in] (nn.Linear, OutIn), bias [out] or null.</summary>
    public sealed record Linear(Var Weight, Var? Bias, bool OutIn);
    /// <summary>q, k, v from one fused projection (Qkv; blocked or per head) or from three (Query, Key, Value); Out [C, C].</summary>
    public sealed record AttentionWeights(Linear? Qkv, bool PerHead, Linear? Query, Linear? Key, Linear? Value, Linear Out);
    /// <summary>act(x·Up) · Down, or gated act(x·Gate) ⊙ (x·Up) · Down.</summary>
    public sealed record FfnWeights(Linear Up, Linear? Gate, Linear Down);
    /// <summary>One block: its two norms (placed as the config says), PostNorm1/2 for sandwich norms, attention and FFN
    /// (dense, or for an MoE layer <see cref="Moe"/> and no dense Ffn).</summary>
    public sealed record Block(Norm Norm1, Norm Norm2, Norm? PostNorm1, Norm? PostNorm2, AttentionWeights Attention, FfnWeights? Ffn)
    {
        public MoeWeights? Moe { get; init; }
    }

    /// <summary>[V, C]: the token embedding (and the output projection when tied).</summary>
    public Var TokenEmbedding { get; }
    /// <summary>[ctx, C]: the learned position table, or null.</summary>
    public Var? PositionEmbedding { get; }
    public Norm? EmbeddingNorm { get; }
    public IReadOnlyList<Block> Blocks { get; }
    /// <summary>The norm before the head; null for post-norm models, whose blocks end in one.</summary>
    public Norm? FinalNorm { get; }
    /// <summary>[V, C]: the untied output projection, or null when it is the token embedding.</summary>
    public Var? LmHead { get; }

    private readonly IReadOnlyDictionary<Var, ParameterRole> _roles;   // each parameter's role, for the initialisation
    private readonly Tensor? _zeroBias;    // [C] zeros: the bias of a bias-free LayerNorm
    private Tensor? _alibiSlopes;          // [NH] F32 (ALiBi)
    private Tensor? _sinusoids;            // [ctx, C] the fixed sinusoidal table
    private Tensor? _positions;            // [B, T] I32: 0..T−1 in every row
    private readonly List<AuxiliaryLoss> _auxiliary = [];   // the last forward's MoE losses (balance, z) per MoE layer
    private readonly List<Tensor> _routingSlots = [];       // the last forward's [N, k] slots per MoE layer

    /// <param name="frozen">Names the parameters not to train (fine-tuning: e.g. name => !name.Contains("lora")); they
    /// get no gradient, no optimizer state and no backward work. Default: every parameter is trained.</param>
    public Decoder(IBackend backend, DecoderConfig config, DType dtype = DType.F32, Func<string, bool>? frozen = null)
        : this(config, new ParameterSet(backend, config.Validate().ParameterSpecs(), dtype, frozen: frozen)) { }

    /// <summary>A model around parameters that already exist (loaded from a checkpoint).</summary>
    public Decoder(DecoderConfig config, ParameterSet parameters)
    {
        Config = config.Validate();
        Parameters = parameters;
        Backend = parameters.Backend;
        var names = WeightNames.For(Config);
        var weights = new ParameterBinding(parameters, names.Weights(Config));   // names are looked up once, here
        _roles = weights.Roles;
        Var P(string name) => weights.Get(name);
        Var? Maybe(string name) => weights.Maybe(name);
        Norm? N(string? prefix) => prefix is null || !weights.Has(prefix + ".weight") ? null : new(P(prefix + ".weight"), Maybe(prefix + ".bias"));
        Linear? L(string? prefix) => prefix is null ? null : new(P(prefix + ".weight"), Maybe(prefix + ".bias"), names.OutIn);

        TokenEmbedding = P(names.TokenEmbedding);
        PositionEmbedding = names.PositionEmbedding(Config) is { } wpe ? P(wpe) : null;
        EmbeddingNorm = N(names.EmbeddingNorm(Config));
        Blocks = [.. Enumerable.Range(0, Config.Layers).Select(l =>
        {
            var b = names.BlockOf(Config, l);
            var attention = new AttentionWeights(L(b.Qkv), names.PerHeadQkv, L(b.Query), L(b.Key), L(b.Value), L(b.Out)!);
            if (b.Router is { } router)   // an MoE layer: the router and the experts' stacked matrices, no biases
                return new Block(N(b.Norm1)!, N(b.Norm2)!, N(b.PostNorm1), N(b.PostNorm2), attention, null)
                {
                    Moe = new MoeWeights(P(router + ".weight"), P(b.Up + ".weight"), b.Gate is null ? null : P(b.Gate + ".weight"), P(b.Down + ".weight")),
                };
            return new Block(N(b.Norm1)!, N(b.Norm2)!, N(b.PostNorm1), N(b.PostNorm2), attention, new FfnWeights(L(b.Up)!, L(b.Gate), L(b.Down)!));
        })];
        FinalNorm = N(names.FinalNorm);
        LmHead = Config.TiedEmbeddings ? null : P(names.LmHead);
        if (Config.Norm == NormKind.LayerNorm && !Config.Bias)
            _zeroBias = Backend.Allocate(parameters.DType, [Config.Channels], "zero bias");
    }

    /// <summary>Loads a checkpoint folder (ours or a Hugging Face download of a supported family); returns the model and
    /// its tokenizer as <see cref="Text.Tokenizers.Open"/> takes it: the folder's tokenizer.model, else its tokenizer.json,
    /// else config.json's llm_tokenizer, else "gpt2" for a GPT-2 folder; null for other families with none of these.</summary>
    /// <param name="frozen">As in the constructor: the parameters not to train.</param>
    public static (Decoder Model, string? Tokenizer) Load(string path, IBackend backend, Func<string, bool>? frozen = null)
    {
        var loaded = IO.Checkpoint.LoadModel(path, backend, frozen);
        return (new Decoder(loaded.Config.Model, loaded.Parameters),
            Text.Tokenizers.ForFolder(loaded.Folder, loaded.Config.Tokenizer, loaded.Config.Model.Naming));
    }

    public int VocabSize => Config.VocabSize;
    public int ContextLength => Config.ContextLength;
    public IO.IModelConfigFile ConfigFile(string? tokenizer) => new IO.HfConfig(Config, tokenizer);

    // ---- forward -------------------------------------------------------------------------------------------------------

    /// <summary>The training forward of a batch: its inputs [B, T], with its prefix lengths for a prefix decoder.</summary>
    public ModelOutput Forward(Tape tape, TokenBatch batch, DropoutStream? dropout = null)
    {
        if (batch.EncoderInputs is not null)
            throw new ArgumentException("a decoder-only model takes no encoder inputs: the span objective needs an encoder-decoder (or --objective span on a prefix decoder builds GLM's blank infilling instead)");
        var ids = tape.Ids(batch.Inputs, [batch.B, batch.T], "inputs");                             // [B, T]
        Tensor? prefix = null;
        if (batch.PrefixLengths is { } lengths)
        {
            if (Config.Visibility != Visibility.Prefix)
                throw new ArgumentException($"the batch has prefix lengths but the model's visibility is {Config.Visibility}: a prefix objective needs a model with Visibility = Prefix");
            prefix = tape.Ids(lengths, [batch.B], "prefix lengths");                                 // [B]
        }
        var inputs = prefix is null && dropout is null ? null : new DecoderInputs { PrefixLengths = prefix, Dropout = dropout };
        var logits = Forward(tape, ids, inputs);
        return new ModelOutput(logits) { Auxiliary = [.. _auxiliary], RoutingSlots = [.. _routingSlots] };
    }

    /// <summary>tokens [B, T] I32 → logits [B, T, V].</summary>
    public Var Forward(Tape tape, Tensor tokens, DecoderInputs? inputs = null)
    {
        if (tokens.Rank != 2 || tokens.DType != DType.I32)
            throw new ArgumentException($"the decoder expects token ids [B, T] I32, got {tokens.Describe()}");
        int B = tokens.Shape[0], T = tokens.Shape[1];
        var cache = inputs?.Cache;
        int offset = cache?.Length ?? 0;
        if (offset + T > Config.ContextLength)
            throw new ArgumentException($"sequence length {offset + T} exceeds the model's context length {Config.ContextLength}");
        if (cache is not null)
        {
            if (tape.Recording) throw new ArgumentException("a KV cache is for inference: use a tape with recording off");
            if (cache.Batch != B || cache.Remaining < T)
                throw new ArgumentException($"tokens {tokens.Describe()} do not fit the KV cache ({cache.Batch} sequences, {cache.Length} of {cache.Capacity} positions used)");
        }
        var positions = inputs?.Positions ?? (offset == 0 ? Positions(B, T) : OffsetPositions(tape, B, T, offset));
        var mask = Mask(inputs, offset);

        var dropout = tape.Recording ? inputs?.Dropout : null;                                      // dropout acts in training only
        _auxiliary.Clear();
        _routingSlots.Clear();
        var x = tape.Embedding(TokenEmbedding, tokens);                                             // [B, T, C]
        if (PositionEmbedding is { } wpe) x = tape.Add(x, tape.Embedding(wpe, positions));
        if (Config.Positions == PositionKind.Sinusoidal) x = tape.Add(x, tape.Embedding(Sinusoids(), positions));
        x = Layers.Drop(tape, x, Config.EmbeddingDropout, dropout, site: 0);
        if (EmbeddingNorm is { } embNorm) x = Normalize(tape, x, embNorm);
        for (int l = 0; l < Blocks.Count; l++)
            x = Forward(tape, x, Blocks[l], positions, mask, cache is null ? null : (cache, l), dropout, l);
        cache?.Advance(T);
        if (FinalNorm is { } final) x = Normalize(tape, x, final);
        return tape.MatMul(x, LmHead ?? TokenEmbedding, transB: true);                              // [B, T, V] = x · Wᵀ
    }

    /// <summary>One block, as its placement draws it (nanoGPT's Block for pre-norm).</summary>
    private Var Forward(Tape tape, Var x, Block block, Tensor positions, AttentionMask mask, (KvCache Cache, int Layer)? cache,
        DropoutStream? dropout, int layer)
    {
        if (dropout is { } stream && Config.AttentionDropout > 0)   // the probabilities' own counter range, after every other site's
            mask = mask with { Dropout = Config.AttentionDropout, DropoutSeed = stream.Key, DropoutOffset = DropoutStream.Offset(1 << 20 | layer) };
        Var Attn(Var h) => Layers.Drop(tape, Attention(tape, h, block.Attention, positions, mask, cache), Config.ResidualDropout, dropout, 1 + 2 * layer);
        Var Ffn(Var h) => Layers.Drop(tape, block.Moe is { } moe ? MoeFeedForward(tape, h, moe, layer) : FeedForward(tape, h, block.Ffn!),
            Config.ResidualDropout, dropout, 2 + 2 * layer);
        Var N(Var h, Norm norm) => Normalize(tape, h, norm);

        if (Config.ParallelBlock)                                                                   // x + attn(n₁(x)) + ffn(n₂(x))
            return tape.Add(tape.Add(x, Attn(N(x, block.Norm1))), Ffn(N(x, block.Norm2)));
        switch (Config.Placement)
        {
            case NormPlacement.Pre:                                                                 // x + f(n(x))
                x = tape.Add(x, Attn(N(x, block.Norm1)));
                return tape.Add(x, Ffn(N(x, block.Norm2)));
            case NormPlacement.Sandwich:                                                            // x + n'(f(n(x)))
                x = tape.Add(x, N(Attn(N(x, block.Norm1)), block.PostNorm1!));
                return tape.Add(x, N(Ffn(N(x, block.Norm2)), block.PostNorm2!));
            default:                                                                                // n(α·x + f(x)), α = 1 without DeepNorm
                double alpha = Config.DeepNorm ? Config.DeepNormAlpha ?? Config.DeepNormConstants().Alpha : 1;
                x = N(tape.Add(Residual(tape, x, alpha), Attn(x)), block.Norm1);
                return N(tape.Add(Residual(tape, x, alpha), Ffn(x)), block.Norm2);
        }
    }

    private static Var Residual(Tape tape, Var x, double alpha) => alpha == 1 ? x : tape.ScaleBy(x, (float)alpha);

    private Var Normalize(Tape tape, Var x, Norm norm) => Layers.Normalize(tape, x, norm, Config.Norm, Config.LayerNormEpsilon, _zeroBias);

    /// <summary>A fresh tape variable over a fixed tensor: its gradient, if an op asks for one, is this step's scratch.</summary>
    private static Var Constant(Tensor value) => new(value);

    private static Var Apply(Tape tape, Var x, Linear linear) => Layers.Apply(tape, x, linear);

    /// <summary>q, k, v → RoPE → attention under the mask → out projection.</summary>
    private Var Attention(Tape tape, Var x, AttentionWeights w, Tensor positions, AttentionMask mask, (KvCache Cache, int Layer)? cache)
    {
        int B = x.Shape[0], T = x.Shape[1], C = Config.Channels, NH = Config.Heads, NKV = Config.KeyValueHeads, hs = Config.HeadSize;
        Var q, k, v;
        if (w.Qkv is { } fused && w.PerHead)
        {
            // BLOOM/NeoX: outputs ordered [NH, 3, hs]; as rows of 3·hs, q, k, v are column bands
            var qkv = tape.Reshape(Apply(tape, x, fused), B * T * NH, 3 * hs);                       // [B·T·NH, 3hs]
            Var Part(int i) => tape.Reshape(tape.Columns(qkv, i * hs, hs), B, T, NH, hs);
            (q, k, v) = (Part(0), Part(1), Part(2));
        }
        else if (w.Qkv is { } blocked)
        {
            var qkv = Apply(tape, x, blocked);                                                        // [B, T, (NH + 2NKV)·hs]
            Var Part(int start, int heads) => tape.Reshape(tape.Columns(qkv, start * hs, heads * hs), B, T, heads, hs);
            (q, k, v) = (Part(0, NH), Part(NH, NKV), Part(NH + NKV, NKV));
        }
        else
        {
            q = tape.Reshape(Apply(tape, x, w.Query!), B, T, NH, hs);                                 // [B, T, NH, hs]
            k = tape.Reshape(Apply(tape, x, w.Key!), B, T, NKV, hs);                                  // [B, T, NKV, hs]
            v = tape.Reshape(Apply(tape, x, w.Value!), B, T, NKV, hs);
        }
        if (Config.Positions == PositionKind.Rope)
        {
            q = tape.Rope(q, positions, Config.RotaryDims, Config.RopeTheta);
            k = tape.Rope(k, positions, Config.RotaryDims, Config.RopeTheta);
        }
        if (cache is var (kv, layer))   // extend the cache, then attend over all of it: the mask hides what is not written yet
        {
            kv.Write(layer, k.Value, v.Value);
            (k, v) = (new Var(kv.Keys[layer]), new Var(kv.Values[layer]));                          // [B, Tmax, NKV, hs]
        }
        var y = tape.Attention(q, k, v, mask);                                                       // [B, T, NH, hs]
        return Apply(tape, tape.Reshape(y, B, T, C), w.Out);                                         // [B, T, C]
    }

    /// <summary>act(x·Up)·Down, or act(x·Gate) ⊙ (x·Up)·Down for the gated family: [B, T, C] → [B, T, F] → [B, T, C].</summary>
    private Var FeedForward(Tape tape, Var x, FfnWeights w) => Layers.FeedForward(tape, x, w, Config.Activation, Config.SwishBeta);

    /// <summary>The MoE FFN on the rows of h [B, T, C] (MixtureOfExperts.cs), collecting its losses and slots.</summary>
    private Var MoeFeedForward(Tape tape, Var h, MoeWeights w, int layer)
    {
        var rows = tape.Reshape(h, h.Value.Rows, Config.Channels);                                // [N, C]
        var y = MixtureOfExperts.Forward(tape, rows, w, Config.Moe!, v => Activate(tape, v), _auxiliary, _routingSlots, layer);
        return tape.Reshape(y, h.Shape);                                                          // [B, T, C]
    }

    private Var Activate(Tape tape, Var x) => Layers.Activate(tape, x, Config.Activation, Config.SwishBeta);

    /// <summary>The config's mask with this forward's prefix lengths and segments, and the ALiBi slopes.</summary>
    private AttentionMask Mask(DecoderInputs? inputs, int offset) => new()
    {
        QueryOffset = offset,
        Visibility = Config.Visibility == Visibility.Prefix && inputs?.PrefixLengths is null ? Visibility.Causal : Config.Visibility,
        PrefixLengths = Config.Visibility == Visibility.Prefix ? inputs?.PrefixLengths : null,
        QuerySegments = inputs?.Segments,
        KeySegments = inputs?.Cache is { } cache ? cache.KeySegments : inputs?.Segments,
        Window = Config.Window,
        Sparse = Config.Sparse,
        Stride = Config.Sparse == SparsePattern.None ? 0 : Config.SparseStride,
        Summary = Config.SparseSummary,
        AlibiSlopes = Config.Positions == PositionKind.Alibi ? AlibiSlopes() : null,
    };

    /// <summary>Press et al.'s slopes m_h = 2^(−8h/n) for n a power of two; for other head counts the closest power
    /// of two below, then every other slope of twice that many (BLOOM's build_alibi_tensor).</summary>
    public static double[] AlibiSlopes(int heads)
    {
        static double[] PowerOfTwo(int n) => [.. Enumerable.Range(1, n).Select(h => Math.Pow(2, -8.0 * h / n))];
        int closest = 1 << (int)Math.Floor(Math.Log2(heads));
        var slopes = PowerOfTwo(closest).ToList();
        if (closest < heads) slopes.AddRange(PowerOfTwo(2 * closest).Where((_, i) => i % 2 == 0).Take(heads - closest));
        return [.. slopes];
    }

    private Tensor AlibiSlopes()
    {
        if (_alibiSlopes is not null) return _alibiSlopes;
        _alibiSlopes = Backend.Allocate(Parameters.DType, [Config.Heads], "alibi slopes");
        UploadDoubles(AlibiSlopes(Config.Heads), _alibiSlopes);
        return _alibiSlopes;
    }

    /// <summary>Vaswani et al.'s table: PE[p, 2i] = sin(p/10000^(2i/C)), PE[p, 2i+1] = cos(p/10000^(2i/C)); not trained.</summary>
    public static double[] Sinusoids(int context, int channels)
    {
        var table = new double[context * channels];
        for (int p = 0; p < context; p++)
            for (int i = 0; i < channels; i++)
            {
                double angle = p / Math.Pow(10000, 2 * (i / 2) / (double)channels);
                table[p * channels + i] = i % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle);
            }
        return table;
    }

    private Var Sinusoids()
    {
        if (_sinusoids is null)
        {
            _sinusoids = Backend.Allocate(Parameters.DType, [Config.ContextLength, Config.Channels], "sinusoids");
            UploadDoubles(Sinusoids(Config.ContextLength, Config.Channels), _sinusoids);
        }
        return Constant(_sinusoids);
    }

    private void UploadDoubles(double[] values, Tensor target)
    {
        if (target.DType == DType.F64) Backend.Upload<double>(values, target);
        else Backend.Upload<float>([.. values.Select(v => (float)v)], target);
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

    /// <summary>[B, T] I32 positions offset..offset+T−1, for a step after the cache's first.</summary>
    private static Tensor OffsetPositions(Tape tape, int B, int T, int offset)
    {
        var ids = new int[B * T];
        for (int i = 0; i < ids.Length; i++) ids[i] = offset + i % T;
        return tape.Ids(ids, [B, T], "positions");
    }

    // ---- initialisation --------------------------------------------------------------------------------------------

    /// <summary>
    /// GPT-2's initialisation: matrices ~ N(0, 0.02), the residual projections (attention out, FFN down) scaled by
    /// 1/√(2·layers) so the residual stream's variance does not grow with depth, biases 0, norm gains 1. DeepNorm models
    /// take DeepNet's instead: Xavier-normal matrices with gain β for v, out and the FFN, 1 for q and k.
    /// Deterministic in the seed, drawn in the order of the parameters.
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
            var role = _roles[p.Var];
            var std = p.Decay ? StdOf(role, p.Value.Shape) : null;   // matrices only: norms and biases are 1 or 0
            var flat = p.Value.Reshape(p.Value.Length);
            for (int start = 0; start < flat.Length; start += host.Length)
            {
                var chunk = host.AsSpan(0, Math.Min(host.Length, flat.Length - start));
                if (role == ParameterRole.NormWeight) chunk.Fill(1.0);
                else if (p.Decay)
                    for (int i = 0; i < chunk.Length; i++) chunk[i] = std!(start + i) * rng.NextGaussian();
                else chunk.Clear();
                var target = flat.Slice(start, [chunk.Length]);
                if (narrow is null) { Backend.Upload<double>(chunk, target); continue; }
                for (int i = 0; i < chunk.Length; i++) narrow[i] = (float)chunk[i];   // UploadDoubles' rounding, into a reused buffer
                Backend.Upload<float>(narrow.AsSpan(0, chunk.Length), target);
            }
        }
    }

    /// <summary>The standard deviation of each element (by its index) of a matrix of <paramref name="role"/>, worked out
    /// once per parameter: only a DeepNorm model's fused q|k|v varies along the matrix.</summary>
    private Func<int, double> StdOf(ParameterRole role, int[] shape)
    {
        if (role is ParameterRole.Embedding or ParameterRole.Position or ParameterRole.Head) return _ => 0.02;
        if (!Config.DeepNorm)
        {
            double std = role is ParameterRole.Out or ParameterRole.Down ? 0.02 / Math.Sqrt(2.0 * Config.Layers) : 0.02;
            return _ => std;
        }
        double beta = Config.DeepNormConstants().Beta, xavier = Math.Sqrt(2.0 / (shape[0] + shape[1]));
        if (role != ParameterRole.Qkv)
        {
            double std = xavier * (role is ParameterRole.Query or ParameterRole.Key ? 1 : beta);
            return _ => std;
        }
        // a fused q|k|v: only its v outputs take β, each of q, k, v Xavier-scaled as its own [C, ·] matrix
        var names = WeightNames.For(Config);
        int hs = Config.HeadSize, columns = shape[1], firstValue = (Config.Heads + Config.KeyValueHeads) * hs;
        double fused = Math.Sqrt(2.0 / (Config.Channels + Config.QkvWidth / 3.0));
        return index =>
        {
            int output = names.OutIn ? index / columns : index % columns;
            bool isValue = names.PerHeadQkv ? output % (3 * hs) >= 2 * hs : output >= firstValue;
            return fused * (isValue ? beta : 1);
        };
    }
}
