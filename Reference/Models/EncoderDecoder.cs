using Llm.Autograd;
using Llm.Common;
using Llm.Inference;
using Llm.Tensors;
using Llm.Text;

namespace Llm.Models;

/// <summary>
/// An encoder-decoder transformer as Hugging Face's modeling_t5 builds it (T5ForConditionalGeneration), composed from
/// the catalogue of <see cref="EncoderDecoderConfig"/>. The encoder's blocks are bidirectional self-attention then FFN;
/// the decoder's are causal self-attention, cross-attention over the encoder's output (no position bias) and FFN. Each
/// stack's block 0 holds its relative position bias table, looked up once per forward and added to every layer's
/// self-attention scores; scores are not scaled by 1/√d (Mesh TensorFlow folds that into q's initialisation). A tied
/// head scales the decoder's output by d^−½ before x·sharedᵀ.
/// Shapes: B batch, Te encoder time, T decoder time, C channels, V vocabulary, NH heads, hs head size (d_kv),
/// inner = NH·hs, F FFN width, NB buckets.
/// </summary>
public sealed class EncoderDecoder : ILanguageModel
{
    public EncoderDecoderConfig Config { get; }
    public IBackend Backend { get; }
    public ParameterSet Parameters { get; }

    /// <summary>q, k, v [inner, C] and o [C, inner] (nn.Linear); for cross-attention q reads the decoder, k and v the encoder.</summary>
    public sealed record AttentionWeights(Decoder.Linear Query, Decoder.Linear Key, Decoder.Linear Value, Decoder.Linear Out);
    /// <summary>An encoder block: layer.0 (norm, self-attention), layer.1 (norm, FFN: dense <see cref="Ffn"/>, or for an
    /// MoE block <see cref="Moe"/> and no Ffn).</summary>
    public sealed record EncoderBlock(Decoder.Norm AttentionNorm, AttentionWeights Attention, Decoder.Norm FfnNorm, Decoder.FfnWeights? Ffn)
    {
        public MoeWeights? Moe { get; init; }
    }
    /// <summary>A decoder block: layer.0 (norm, causal self-attention), layer.1 (norm, cross-attention), layer.2 (norm,
    /// FFN: dense <see cref="Ffn"/>, or for an MoE block <see cref="Moe"/> and no Ffn).</summary>
    public sealed record DecoderBlock(Decoder.Norm AttentionNorm, AttentionWeights Attention, Decoder.Norm CrossNorm, AttentionWeights Cross,
        Decoder.Norm FfnNorm, Decoder.FfnWeights? Ffn)
    {
        public MoeWeights? Moe { get; init; }
    }

    /// <summary>[V, C]: shared.weight, the embedding of both stacks (and the head when tied).</summary>
    public Var Shared { get; }
    /// <summary>[NB, NH]: the encoder's relative position bias (block 0's), bidirectional buckets.</summary>
    public Var EncoderBias { get; }
    /// <summary>[NB, NH]: the decoder's relative position bias (block 0's), causal buckets.</summary>
    public Var DecoderBias { get; }
    public IReadOnlyList<EncoderBlock> EncoderBlocks { get; }
    public IReadOnlyList<DecoderBlock> DecoderBlocks { get; }
    public Decoder.Norm EncoderFinalNorm { get; }
    public Decoder.Norm DecoderFinalNorm { get; }
    /// <summary>[V, C]: the untied head, or null when it is <see cref="Shared"/>.</summary>
    public Var? LmHead { get; }

    private readonly IReadOnlyDictionary<Var, ParameterRole> _roles;   // each parameter's role, for the initialisation
    private readonly Tensor? _zeroBias;   // [C] zeros: the bias of a bias-free LayerNorm
    // the MoE losses (balance, z) and [N, k] routing slots of the last Encode and of the last Decode, per MoE block:
    // kept per stack, so that generation (one Encode, many cached Decode steps) holds only the latest of each
    private readonly List<AuxiliaryLoss> _encoderAuxiliary = [], _decoderAuxiliary = [];
    private readonly List<Tensor> _encoderSlots = [], _decoderSlots = [];

    /// <param name="frozen">Names the parameters not to train; they get no gradient and no optimizer state.</param>
    public EncoderDecoder(IBackend backend, EncoderDecoderConfig config, DType dtype = DType.F32, Func<string, bool>? frozen = null)
        : this(config, new ParameterSet(backend, config.Validate().ParameterSpecs(), dtype, frozen: frozen)) { }

    /// <summary>A model around parameters that already exist (loaded from a checkpoint).</summary>
    public EncoderDecoder(EncoderDecoderConfig config, ParameterSet parameters)
    {
        Config = config.Validate();
        Parameters = parameters;
        Backend = parameters.Backend;
        var weights = new ParameterBinding(parameters, Config.Weights());   // names are looked up once, here
        _roles = weights.Roles;
        Var P(string name) => weights.Get(name);
        Var? Maybe(string name) => weights.Maybe(name);
        Decoder.Norm N(string prefix) => new(P(prefix + ".weight"), Maybe(prefix + ".bias"));
        Decoder.Linear L(string prefix) => new(P(prefix + ".weight"), Maybe(prefix + ".bias"), OutIn: true);
        AttentionWeights A(string prefix) => new(L(prefix + ".q"), L(prefix + ".k"), L(prefix + ".v"), L(prefix + ".o"));
        Decoder.FfnWeights F(string prefix) => Config.Gated
            ? new(L(prefix + ".wi_1"), L(prefix + ".wi_0"), L(prefix + ".wo"))   // wi_0 is activated (the gate), wi_1 linear
            : new(L(prefix + ".wi"), null, L(prefix + ".wo"));
        bool IsMoe(int l) => Config.Moe is { } moe && moe.IsMoeLayer(l);
        MoeWeights M(string prefix) => new(P(prefix + ".router.classifier.weight"), P(prefix + (Config.Gated ? ".experts.wi_1.weight" : ".experts.wi.weight")),
            Config.Gated ? P(prefix + ".experts.wi_0.weight") : null, P(prefix + ".experts.wo.weight"));   // no biases

        Shared = P("shared.weight");
        EncoderBlocks = [.. Enumerable.Range(0, Config.EncoderLayers).Select(l =>
        {
            string b = $"encoder.block.{l}.layer";
            return new EncoderBlock(N($"{b}.0.layer_norm"), A($"{b}.0.SelfAttention"), N($"{b}.1.layer_norm"), IsMoe(l) ? null : F($"{b}.1.DenseReluDense"))
                { Moe = IsMoe(l) ? M($"{b}.1.mlp") : null };
        })];
        EncoderBias = P("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
        EncoderFinalNorm = N("encoder.final_layer_norm");
        DecoderBlocks = [.. Enumerable.Range(0, Config.DecoderLayers).Select(l =>
        {
            string b = $"decoder.block.{l}.layer";
            return new DecoderBlock(N($"{b}.0.layer_norm"), A($"{b}.0.SelfAttention"), N($"{b}.1.layer_norm"), A($"{b}.1.EncDecAttention"),
                N($"{b}.2.layer_norm"), IsMoe(l) ? null : F($"{b}.2.DenseReluDense")) { Moe = IsMoe(l) ? M($"{b}.2.mlp") : null };
        })];
        DecoderBias = P("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
        DecoderFinalNorm = N("decoder.final_layer_norm");
        LmHead = Config.TiedEmbeddings ? null : P("lm_head.weight");
        if (Config.Norm == NormKind.LayerNorm && !Config.Bias)
            _zeroBias = Backend.Allocate(parameters.DType, [Config.Channels], "zero bias");
    }

    public int VocabSize => Config.VocabSize;
    public int ContextLength => Config.ContextLength;
    public IO.IModelConfigFile ConfigFile(string? tokenizer) => new IO.T5HfConfig(Config, tokenizer);

    // ---- relative positions ------------------------------------------------------------------------------------------

    /// <summary>
    /// Hugging Face's T5Attention._relative_position_bucket for query i (at position queryOffset + i) and key j:
    /// rp = j − (queryOffset + i). Bidirectional: half the buckets for rp ≤ 0 and half (offset by NB/2) for rp &gt; 0,
    /// over |rp|; causal: n = −min(rp, 0). Distances below max_exact = nb/2 (nb the buckets per direction) are buckets of
    /// their own; longer ones are log-spaced up to maxDistance, computed in float32 as torch does, truncated and capped at
    /// nb − 1. Returns [Tq·Tk] row-major.
    /// </summary>
    public static int[] RelativeBuckets(int queryLength, int keyLength, int queryOffset, bool bidirectional, int numBuckets, int maxDistance)
    {
        if (queryLength < 0 || keyLength < 0 || queryOffset < 0)
            throw new ArgumentException($"relative buckets: lengths {queryLength}, {keyLength} and offset {queryOffset} must be ≥ 0");
        int nb = bidirectional ? numBuckets / 2 : numBuckets, maxExact = nb / 2;
        if (maxExact < 1 || maxDistance <= maxExact)
            throw new ArgumentException($"relative buckets: {numBuckets} buckets ({(bidirectional ? "bidirectional" : "causal")}) and max distance {maxDistance} leave no exact or no log-spaced range");
        // torch: log(rp.float() / max_exact) / math.log(max_distance / max_exact) * (nb − max_exact), all in float32
        float logRange = (float)Math.Log((double)maxDistance / maxExact), logBuckets = nb - maxExact;
        var buckets = new int[queryLength * keyLength];
        for (int i = 0; i < queryLength; i++)
            for (int j = 0; j < keyLength; j++)
            {
                int rp = j - (queryOffset + i), bucket = 0;
                if (bidirectional)
                {
                    if (rp > 0) bucket = nb;
                    rp = Math.Abs(rp);
                }
                else rp = -Math.Min(rp, 0);
                if (rp < maxExact) bucket += rp;
                else
                {
                    float large = MathF.Log((float)rp / maxExact) / logRange * logBuckets;
                    bucket += Math.Min(maxExact + (int)large, nb - 1);
                }
                buckets[i * keyLength + j] = bucket;
            }
        return buckets;
    }

    // ---- forward -----------------------------------------------------------------------------------------------------

    /// <summary>The training forward of a batch: the encoder reads its EncoderInputs [B, Te], the decoder its Inputs [B, T]
    /// (the targets shifted right behind the decoder start token, as the objective builds them).</summary>
    public ModelOutput Forward(Tape tape, TokenBatch batch, DropoutStream? dropout = null)
    {
        if (batch.EncoderInputs is not { } source || batch.EncoderLength <= 0)
            throw new ArgumentException("an encoder-decoder needs encoder inputs: the batch has none (use the span objective, or a decoder-only model)");
        if (batch.PrefixLengths is not null)
            throw new ArgumentException("an encoder-decoder takes no prefix lengths: its encoder is the bidirectional part");
        var encoderTokens = tape.Ids(source, [batch.B, batch.EncoderLength], "encoder inputs");   // [B, Te]
        var decoderTokens = tape.Ids(batch.Inputs, [batch.B, batch.T], "decoder inputs");         // [B, T]
        var logits = Forward(tape, encoderTokens, decoderTokens, dropout);
        return new ModelOutput(logits)
        {
            Auxiliary = [.. _encoderAuxiliary, .. _decoderAuxiliary], RoutingSlots = [.. _encoderSlots, .. _decoderSlots],
        };
    }

    /// <summary>Decode(Encode(source)): logits [B, T, V].</summary>
    public Var Forward(Tape tape, Tensor encoderTokens, Tensor decoderTokens, DropoutStream? dropout = null) =>
        Decode(tape, decoderTokens, Encode(tape, encoderTokens, dropout), dropout: dropout);

    /// <summary>encoder tokens [B, Te] I32 → the encoder's output [B, Te, C] (after its final norm and dropout).</summary>
    public Var Encode(Tape tape, Tensor encoderTokens, DropoutStream? dropout = null)
    {
        CheckTokens(encoderTokens, "encoder");
        int Te = encoderTokens.Shape[1];
        var stream = tape.Recording ? dropout : null;   // dropout acts in training only
        var buckets = tape.Ids(RelativeBuckets(Te, Te, 0, true, Config.RelativeBuckets, Config.RelativeMaxDistance), [Te, Te], "encoder buckets");
        var bias = tape.RelativePositionBias(EncoderBias, buckets);                                   // [NH, Te, Te], shared by every layer
        var mask = new AttentionMask { Visibility = Visibility.Bidirectional, Scale = 1f };

        _encoderAuxiliary.Clear();
        _encoderSlots.Clear();
        var x = Drop(tape, tape.Embedding(Shared, encoderTokens), stream, Site(0, -1, 0));            // [B, Te, C]
        for (int l = 0; l < EncoderBlocks.Count; l++)
        {
            var block = EncoderBlocks[l];
            var selfMask = WithDropout(mask, stream, Site(0, l, ProbsSite));
            x = SubLayer(tape, x, block.AttentionNorm, h => Attention(tape, h, h, block.Attention, selfMask, bias, null), stream, Site(0, l, AttentionSite));
            int layer = l;
            x = SubLayer(tape, x, block.FfnNorm, h => block.Moe is { } moe ? MoeFeedForward(tape, h, moe, $"enc.{layer}", _encoderAuxiliary, _encoderSlots)
                : FeedForward(tape, h, block.Ffn!, stream, Site(0, layer, HiddenSite)), stream, Site(0, l, FfnSite));
        }
        return Drop(tape, Normalize(tape, x, EncoderFinalNorm), stream, Site(0, -1, 1));
    }

    /// <summary>decoder tokens [B, T] I32 over the encoder's output [B, Te, C] → logits [B, T, V]. With a cache (inference
    /// only) the tokens extend the cached ones, and the cross-attention keys and values come from the cache after its first call.</summary>
    public Var Decode(Tape tape, Tensor decoderTokens, Var encoderOutput, EncoderDecoderCache? cache = null, DropoutStream? dropout = null)
    {
        CheckTokens(decoderTokens, "decoder");
        int B = decoderTokens.Shape[0], T = decoderTokens.Shape[1];
        if (encoderOutput.Shape.Length != 3 || encoderOutput.Shape[0] != B || encoderOutput.Shape[2] != Config.Channels)
            throw new ArgumentException($"the encoder output {encoderOutput.Value.Describe()} should be [{B}, Te, {Config.Channels}] for decoder tokens {decoderTokens.Describe()}");
        int offset = cache?.Length ?? 0;
        if (cache is not null)
        {
            if (tape.Recording) throw new ArgumentException("an encoder-decoder cache is for inference: use a tape with recording off");
            if (cache.Batch != B || cache.Remaining < T)
                throw new ArgumentException($"decoder tokens {decoderTokens.Describe()} do not fit the cache ({cache.Batch} sequences, {cache.Length} of {cache.Capacity} positions used)");
        }
        if (offset + T > Config.ContextLength)
            throw new ArgumentException($"decoder length {offset + T} exceeds the model's context length {Config.ContextLength}");
        var stream = tape.Recording ? dropout : null;
        int keys = cache?.Capacity ?? T;   // a cached step attends over the whole cache; the causal mask hides what is unwritten
        var buckets = tape.Ids(RelativeBuckets(T, keys, offset, false, Config.RelativeBuckets, Config.RelativeMaxDistance), [T, keys], "decoder buckets");
        var bias = tape.RelativePositionBias(DecoderBias, buckets);                                   // [NH, T, keys], shared by every layer
        var causal = new AttentionMask { Visibility = Visibility.Causal, QueryOffset = offset, Scale = 1f };
        var cross = new AttentionMask { Visibility = Visibility.Bidirectional, Scale = 1f };

        _decoderAuxiliary.Clear();
        _decoderSlots.Clear();
        var x = Drop(tape, tape.Embedding(Shared, decoderTokens), stream, Site(1, -1, 0));            // [B, T, C]
        for (int l = 0; l < DecoderBlocks.Count; l++)
        {
            var block = DecoderBlocks[l];
            int layer = l;
            var selfMask = WithDropout(causal, stream, Site(1, l, ProbsSite));
            var crossMask = WithDropout(cross, stream, Site(1, l, CrossProbsSite));
            x = SubLayer(tape, x, block.AttentionNorm, h => Attention(tape, h, h, block.Attention, selfMask, bias, cache is null ? null : (cache, layer, false)),
                stream, Site(1, l, AttentionSite));
            x = SubLayer(tape, x, block.CrossNorm, h => Attention(tape, h, encoderOutput, block.Cross, crossMask, null, cache is null ? null : (cache, layer, true)),
                stream, Site(1, l, CrossSite));
            x = SubLayer(tape, x, block.FfnNorm, h => block.Moe is { } moe ? MoeFeedForward(tape, h, moe, $"dec.{layer}", _decoderAuxiliary, _decoderSlots)
                : FeedForward(tape, h, block.Ffn!, stream, Site(1, layer, HiddenSite)), stream, Site(1, l, FfnSite));
        }
        cache?.Advance(T);
        x = Drop(tape, Normalize(tape, x, DecoderFinalNorm), stream, Site(1, -1, 1));
        if (LmHead is { } head) return tape.MatMul(x, head, transB: true);                           // [B, T, V] = x · lm_headᵀ
        return tape.MatMul(tape.ScaleBy(x, (float)(1 / Math.Sqrt(Config.Channels))), Shared, transB: true);   // (x·d^−½) · sharedᵀ
    }

    private void CheckTokens(Tensor tokens, string stack)
    {
        if (tokens.Rank != 2 || tokens.DType != DType.I32)
            throw new ArgumentException($"the {stack} expects token ids [B, T] I32, got {tokens.Describe()}");
        if (tokens.Shape[1] > Config.ContextLength)
            throw new ArgumentException($"{stack} length {tokens.Shape[1]} exceeds the model's context length {Config.ContextLength}");
    }

    /// <summary>Pre: x + drop(f(n(x))) (T5); post: n(x + drop(f(x))). Each stack's final_layer_norm follows its blocks in
    /// either placement (the config's weights have it either way).</summary>
    private Var SubLayer(Tape tape, Var x, Decoder.Norm norm, Func<Var, Var> f, DropoutStream? stream, int site) =>
        Config.Placement == NormPlacement.Pre
            ? tape.Add(x, Drop(tape, f(Normalize(tape, x, norm)), stream, site))
            : Normalize(tape, tape.Add(x, Drop(tape, f(x), stream, site)), norm);

    /// <summary>q from <paramref name="x"/> [B, Tq, C], k and v from <paramref name="source"/> [B, Tk, C] (x itself for
    /// self-attention), attention under the mask with the score bias, then o. A cache (inference) extends and reads the
    /// self-attention keys, or holds the cross-attention keys computed on its first call.</summary>
    private Var Attention(Tape tape, Var x, Var source, AttentionWeights w, AttentionMask mask, Var? bias,
        (EncoderDecoderCache Cache, int Layer, bool Cross)? cache)
    {
        int B = x.Shape[0], Tq = x.Shape[1], Tk = source.Shape[1], NH = Config.Heads, hs = Config.HeadSize;
        var q = tape.Reshape(Layers.Apply(tape, x, w.Query), B, Tq, NH, hs);                         // [B, Tq, NH, hs]
        Var k, v;
        if (cache is { Cross: true } held && held.Cache.HasCross(held.Layer))
            (k, v) = (new Var(held.Cache.CrossKeys[held.Layer]!), new Var(held.Cache.CrossValues[held.Layer]!));   // [B, Te, NH, hs]
        else
        {
            k = tape.Reshape(Layers.Apply(tape, source, w.Key), B, Tk, NH, hs);                        // [B, Tk, NH, hs]
            v = tape.Reshape(Layers.Apply(tape, source, w.Value), B, Tk, NH, hs);
            if (cache is { } c && c.Cross)
            {
                c.Cache.SetCross(c.Layer, k.Value, v.Value);                                            // computed once, kept
                (k, v) = (new Var(c.Cache.CrossKeys[c.Layer]!), new Var(c.Cache.CrossValues[c.Layer]!));
            }
            else if (cache is { } s)
            {
                s.Cache.Write(s.Layer, k.Value, v.Value);
                (k, v) = (new Var(s.Cache.Keys[s.Layer]), new Var(s.Cache.Values[s.Layer]));            // [B, Tmax, NH, hs]
            }
        }
        var y = tape.Attention(q, k, v, mask, bias);                                                  // [B, Tq, NH, hs]
        return Layers.Apply(tape, tape.Reshape(y, B, Tq, NH * hs), w.Out);                           // [B, Tq, C]
    }

    /// <summary>T5's DenseReluDense: act(x·wi) (or act(x·wi_0) ⊙ x·wi_1), dropout, ·wo.</summary>
    private Var FeedForward(Tape tape, Var x, Decoder.FfnWeights w, DropoutStream? stream, int site) =>
        Layers.FeedForward(tape, x, w, Config.Activation, hidden: h => Drop(tape, h, stream, site));

    /// <summary>The MoE FFN (MixtureOfExperts.cs) on the rows of h [B, T, C] → [B, T, C], its losses and slots into the
    /// stack's lists; a cached decoder step routes its B·1 rows (eval capacity). T5's hidden dropout (between wi and wo)
    /// does not act inside the experts: only the sublayer's output dropout does.</summary>
    private Var MoeFeedForward(Tape tape, Var h, MoeWeights w, string tag, List<AuxiliaryLoss> auxiliary, List<Tensor> slots)
    {
        var rows = tape.Reshape(h, h.Value.Rows, Config.Channels);                                // [N, C]
        var y = MixtureOfExperts.Forward(tape, rows, w, Config.Moe!, v => Layers.Activate(tape, v, Config.Activation), auxiliary, slots, tag);
        return tape.Reshape(y, h.Shape);                                                          // [B, T, C]
    }

    private Var Normalize(Tape tape, Var x, Decoder.Norm norm) => Layers.Normalize(tape, x, norm, Config.Norm, Config.LayerNormEpsilon, _zeroBias);

    private Var Drop(Tape tape, Var x, DropoutStream? stream, int site) => Layers.Drop(tape, x, Config.Dropout, stream, site);

    private AttentionMask WithDropout(AttentionMask mask, DropoutStream? stream, int site) =>
        stream is { } s && Config.Dropout > 0 ? mask with { Dropout = Config.Dropout, DropoutSeed = s.Key, DropoutOffset = DropoutStream.Offset(site) } : mask;

    // Dropout sites, each its own counter range: stack (0 encoder, 1 decoder) × (layer, what); layer −1 is the stack's
    // embedding (what 0) and final (what 1) dropout.
    private const int AttentionSite = 0, CrossSite = 1, HiddenSite = 2, FfnSite = 3, ProbsSite = 4, CrossProbsSite = 5;
    private static int Site(int stack, int layer, int what) => stack << 20 | (layer + 1) << 3 | what;

    // ---- initialisation ----------------------------------------------------------------------------------------------

    /// <summary>
    /// Hugging Face's T5PreTrainedModel._init_weights at initializer_factor 1 (Mesh TensorFlow's): shared and an untied
    /// lm_head ~ N(0, 1); q ~ N(0, (C·hs)^−½), k and v ~ N(0, C^−½), o ~ N(0, (NH·hs)^−½); wi, wi_0, wi_1 ~ N(0, C^−½),
    /// wo ~ N(0, F^−½); relative_attention_bias ~ N(0, C^−½); norm gains 1, biases 0. Deterministic in the seed, drawn
    /// in the order of the parameters. MoE blocks as SwitchTransformersPreTrainedModel._init_weights: the router's
    /// classifier ~ N(0, 1), the experts' wi (wi_0, wi_1) and wo all ~ N(0, C^−½) (transformers draws the experts' wo
    /// with d_model^−½, not the dense wo's d_ff^−½; the router's N(0, 1) makes the first routing nearly hard).
    /// </summary>
    public void InitializeWeights(ulong seed)
    {
        var rng = new Rng(seed);
        var host = new double[Math.Min(1 << 20, Parameters.All.Max(p => p.Value.Length))];
        var narrow = Parameters.DType == DType.F64 ? null : new float[host.Length];
        foreach (var p in Parameters.All)
        {
            var role = _roles[p.Var];
            // the stacked experts' wo [E, F, C] is drawn as transformers' SwitchTransformersSparseMLP draws it: d_model^−½
            double std = role == ParameterRole.Down && p.Value.Rank == 3 ? 1 / Math.Sqrt(Config.Channels) : StdOf(role);
            var flat = p.Value.Reshape(p.Value.Length);
            for (int start = 0; start < flat.Length; start += host.Length)
            {
                var chunk = host.AsSpan(0, Math.Min(host.Length, flat.Length - start));
                if (role == ParameterRole.NormWeight) chunk.Fill(1.0);
                else if (role is ParameterRole.NormBias or ParameterRole.Bias) chunk.Clear();
                else for (int i = 0; i < chunk.Length; i++) chunk[i] = std * rng.NextGaussian();
                var target = flat.Slice(start, [chunk.Length]);
                if (narrow is null) { Backend.Upload<double>(chunk, target); continue; }
                for (int i = 0; i < chunk.Length; i++) narrow[i] = (float)chunk[i];
                Backend.Upload<float>(narrow.AsSpan(0, chunk.Length), target);
            }
        }
    }

    private double StdOf(ParameterRole role) => role switch
    {
        ParameterRole.Embedding or ParameterRole.Head or ParameterRole.Router => 1.0,
        ParameterRole.Query => 1 / Math.Sqrt((double)Config.Channels * Config.HeadSize),
        ParameterRole.Out => 1 / Math.Sqrt(Config.InnerWidth),
        ParameterRole.Down => 1 / Math.Sqrt(Config.Hidden),
        _ => 1 / Math.Sqrt(Config.Channels),   // k, v, wi, wi_0, wi_1, the relative bias
    };
}
