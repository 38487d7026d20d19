using Llm.Autograd;
using Llm.Checks;
using Llm.Common;
using Llm.Conformance.Harness;
using Llm.Cpu;
using Llm.Inference;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;
using Llm.Training;
using Xunit;

namespace Llm.Conformance.Model;

/// <summary>
/// The encoder-decoder (T5) composed from the ops: its whole-model fp64 gradients match finite differences, every subject
/// computes the definition's losses and gradients, a decoder whose cross-attention is switched off is the decoder-only
/// model, the relative buckets are Hugging Face's, cached generation equals uncached, and a short training run agrees
/// between the Reference and Vulkan.
/// </summary>
public sealed class EncoderDecoderTests
{
    /// <summary>Micro configs with every dimension distinct (V prime, inner = NH·hs = 10 ≠ C = 16, F = 12, Te ≠ T).</summary>
    public static IReadOnlyDictionary<string, EncoderDecoderConfig> Configs { get; } = new Dictionary<string, EncoderDecoderConfig>
    {
        ["t5-micro"] = Micro(EncoderDecoderConfig.T5Micro),
        ["gegelu-tanh-untied"] = Micro(EncoderDecoderConfig.T5Micro) with { Activation = Activation.GeGluTanh, TiedEmbeddings = false },
        ["layernorm-post-bias"] = Micro(EncoderDecoderConfig.T5Micro) with { Norm = NormKind.LayerNorm, Placement = NormPlacement.Post, Bias = true },
    };

    internal static EncoderDecoderConfig Micro(EncoderDecoderConfig c) => c with
    {
        VocabSize = 13, ContextLength = 8, Channels = 16, Heads = 2, HeadSize = 5, Hidden = 12, EncoderLayers = 2, DecoderLayers = 2,
        RelativeBuckets = 8, RelativeMaxDistance = 6, EosToken = 1,
    };

    /// <summary>As <see cref="GradientCheckTests"/>'s: two blocks per stack compound per-op f32 error through ~50 ops;
    /// 1e-6 NMSE (relative error 1e-3) still fails a wrong op or wiring (≥ 1e-2); per element 1e-3 of (|b| + RMS).</summary>
    private static readonly Tolerance ModelTolerance = new(1e-6, 1e-3, "a 2+2-layer encoder-decoder step: compounded f32 error");

    internal sealed record Setup(int[] Source, int[] Inputs, int[] Targets, double[] Weights, double[] DLosses, int B, int Te, int T);

    internal static Setup Draw(EncoderDecoderConfig config, int b, int te, int t, int seed)
    {
        var rng = new Rng((ulong)seed);
        int v = config.VocabSize;
        var source = Values.Ids(rng, b * te, v);
        var inputs = Values.Ids(rng, b * t, v);
        var targets = Enumerable.Range(0, b * t).Select(_ => rng.NextInt(5) == 0 ? -1 : rng.NextInt(v)).ToArray();
        // every parameter random (not T5's init: unit gains and zero biases would hide a swapped gradient), gains near 1
        var weights = Values.Normal(rng, (int)config.ParameterCount(), 0.3);
        return new(source, inputs, targets, weights, Values.Normal(rng, b * t), b, te, t);
    }

    internal static EncoderDecoder Build(EncoderDecoderConfig config, IBackend backend, DType dtype, double[] weights)
    {
        var model = new EncoderDecoder(backend, config, dtype);
        var host = (double[])weights.Clone();
        var gains = config.Weights().Where(w => w.Role == ParameterRole.NormWeight).Select(w => w.Name).ToHashSet();
        foreach (var p in model.Parameters.All.Where(p => gains.Contains(p.Name)))
            for (int i = 0; i < p.Value.Length; i++) host[p.Offset + i] += 1.0;
        OpCheck.UploadFloats(backend, model.Parameters.Arenas.Single().Values, host);
        return model;
    }

    internal static Tensor Ids(IBackend backend, int[] ids, params int[] shape)
    {
        var t = backend.Allocate(DType.I32, shape);
        backend.Upload<int>(ids, t);
        return t;
    }

    private static double[] Step(EncoderDecoder model, Setup s, bool backward)
    {
        var backend = model.Backend;
        using var tape = new Tape(backend, recording: backward);
        var logits = model.Forward(tape, Ids(backend, s.Source, s.B, s.Te), Ids(backend, s.Inputs, s.B, s.T));
        var losses = tape.CrossEntropy(logits, Ids(backend, s.Targets, s.B, s.T));
        if (backward)
        {
            model.Parameters.ZeroGrad();
            var dLosses = backend.Allocate(model.Parameters.DType, [s.B * s.T]);
            OpCheck.UploadFloats(backend, dLosses, s.DLosses);
            tape.Backward(losses, dLosses);
        }
        return OpCheck.Download(backend, losses.Value);
    }

    public static TheoryData<string> Names => [.. Configs.Keys];

    /// <summary>fp64 on the definition: the tape's gradient of L = Σ w_n·loss_n for every parameter tensor (both relative
    /// bias tables included) matches central differences at 6 coordinates each (relative 1e-6, <see cref="FiniteDifferences"/>).</summary>
    [Theory, MemberData(nameof(Names))]
    public void GradientsMatchFiniteDifferences(string name)
    {
        var config = Configs[name];
        var s = Draw(config, 2, 6, 5, 17);
        var model = Build(config, Oracle.Backend, DType.F64, s.Weights);
        Step(model, s, backward: true);
        var rng = new Rng(0xF00D);
        foreach (var p in model.Parameters.All)
        {
            double[] x = Oracle.Read(p.Value), analytic = Oracle.Read(p.Grad!);
            if (!IsKeyBias(p.Name)) Assert.True(analytic.Any(g => g != 0), $"{name}: {p.Name} received no gradient");
            double[] Forward(double[] xs)
            {
                Oracle.Write(p.Value, xs);
                var losses = Step(model, s, backward: false);
                Oracle.Write(p.Value, x);
                return losses;
            }
            FiniteDifferences.Check(name + " backward", p.Name, name, x, Forward, s.DLosses, analytic, rng, maxCoords: 6);
        }
    }

    /// <summary>Every subject (F32) computes the definition's losses and gradients from the same weights.</summary>
    [Theory, MemberData(nameof(Names))]
    public void EverySubjectMatchesTheDefinition(string name)
    {
        var config = Configs[name];
        var s = Draw(config, 2, 7, 6, 23);
        var oracle = Build(config, Oracle.Backend, DType.F64, s.Weights);
        var oracleLosses = Step(oracle, s, backward: true);
        foreach (var subject in Backends.Subjects)
        {
            var model = Build(config, subject.Backend, subject.DType, s.Weights);
            var losses = Step(model, s, backward: true);
            Compare.Check(Backends.Context, name + " forward", subject.Name, "losses", [s.B, s.T], losses, oracleLosses, ModelTolerance, name);
            foreach (var (p, q) in model.Parameters.All.Zip(oracle.Parameters.All))
            {
                // a key bias adds q·b to every key's score of a query alike, which the softmax ignores: its exact gradient
                // is 0 and an f32 one is rounding noise, held to the scale of its key weight's gradient instead
                double scale = IsKeyBias(p.Name) ? Rms(Oracle.Read(oracle.Parameters[p.Name[..^"bias".Length] + "weight"].Grad!)) : 0;
                Compare.Check(Backends.Context, name + " backward", subject.Name, "d" + p.Name, p.Grad!.Shape,
                    OpCheck.Download(subject.Backend, p.Grad!), Oracle.Read(q.Grad!), ModelTolerance, name, scale: scale);
            }
        }
    }

    private static bool IsKeyBias(string name) => name.EndsWith(".k.bias");
    private static double Rms(double[] xs) => Math.Sqrt(xs.Average(x => x * x));

    /// <summary>
    /// The identity: with every cross-attention o weight zero (so each cross-attention sub-layer adds exactly 0 to the
    /// residual) and both relative bias tables zero (no position term in any score), T5's decoder is a pre-RMSNorm,
    /// bias-free, ReLU, position-free causal decoder with a tied head: exactly the <see cref="Decoder"/> of that catalogue
    /// config given the same embedding, norms, q, k, v, o, wi and wo — up to two documented differences, made exact here:
    /// T5 does not scale scores by 1/√hs, so the Decoder's q weights are multiplied by √hs = 2 (exact in binary); and T5's
    /// tied head multiplies by d^−½ = 1/4 (exact), so the Decoder's logits are compared ×1/4. Whatever the encoder
    /// computes must then not matter. fp64, to 1e-12 relative: only reassociation separates the two.
    /// </summary>
    [Fact]
    public void WithoutCrossAttentionAndPositionBiasTheDecoderIsTheDecoderOnlyModel()
    {
        var config = EncoderDecoderConfig.T5Micro with { VocabSize = 13, ContextLength = 8, Channels = 16, Heads = 4, HeadSize = 4, Hidden = 24 };
        var backend = Oracle.Backend;
        var t5 = new EncoderDecoder(backend, config, DType.F64);
        t5.InitializeWeights(3);
        foreach (var block in t5.DecoderBlocks) backend.Fill(block.Cross.Out.Weight.Value, 0);
        backend.Fill(t5.EncoderBias.Value, 0);
        backend.Fill(t5.DecoderBias.Value, 0);

        var decoderConfig = DecoderConfig.Llama7B with
        {
            VocabSize = 13, ContextLength = 8, Layers = config.DecoderLayers, Heads = 4, KvHeads = 4, Channels = 16, Hidden = 24,
            Norm = NormKind.RmsNorm, Placement = NormPlacement.Pre, Bias = false, Activation = Activation.Relu, Positions = PositionKind.None,
            TiedEmbeddings = true, LayerNormEpsilon = config.LayerNormEpsilon,
        };
        var decoder = new Decoder(backend, decoderConfig, DType.F64);
        void Take(Var from, Var to) => backend.Copy(from.Value, to.Value);
        Take(t5.Shared, decoder.TokenEmbedding);
        for (int l = 0; l < config.DecoderLayers; l++)
        {
            var (a, b) = (t5.DecoderBlocks[l], decoder.Blocks[l]);
            Take(a.AttentionNorm.Weight, b.Norm1.Weight);
            Take(a.Attention.Query.Weight, b.Attention.Query!.Weight);
            backend.Scale(b.Attention.Query!.Weight.Value, 2f);                  // √hs: undoes the Decoder's 1/√hs
            Take(a.Attention.Key.Weight, b.Attention.Key!.Weight);
            Take(a.Attention.Value.Weight, b.Attention.Value!.Weight);
            Take(a.Attention.Out.Weight, b.Attention.Out.Weight);
            Take(a.FfnNorm.Weight, b.Norm2.Weight);
            Take(a.Ffn!.Up.Weight, b.Ffn!.Up.Weight);
            Take(a.Ffn!.Down.Weight, b.Ffn!.Down.Weight);
            Assert.True(b.Attention.Query!.OutIn && b.Ffn!.Up.OutIn, "both models store nn.Linear [out, in] matrices");
        }
        Take(t5.DecoderFinalNorm.Weight, decoder.FinalNorm!.Weight);

        int B = 2, Te = 5, T = 7;
        var rng = new Rng(9);
        using var tape = new Tape(backend, recording: false);
        var target = Ids(backend, Values.Ids(rng, B * T, 13), B, T);
        var t5Logits = Oracle.Read(t5.Forward(tape, Ids(backend, Values.Ids(rng, B * Te, 13), B, Te), target).Value);
        var decoderLogits = Oracle.Read(decoder.Forward(tape, target).Value).Select(x => x / 4).ToArray();   // × d^−½
        double scale = Math.Sqrt(decoderLogits.Average(x => x * x));
        for (int i = 0; i < t5Logits.Length; i++)
            Assert.True(Math.Abs(t5Logits[i] - decoderLogits[i]) <= 1e-12 * scale, $"logit {i}: T5 {t5Logits[i]:R} vs decoder {decoderLogits[i]:R}");
    }

    // ---- relative buckets -------------------------------------------------------------------------------------------

    /// <summary>Runs (bucket, first distance) of Hugging Face's _relative_position_bucket over the distance n = |rp|
    /// (bidirectional, keys before the query; those after add NB/2) or n = −min(rp, 0) (causal), as torch 1.13 computes it
    /// (float32 logs: the boundaries at n = 16, 32, 64, where the real-valued formula is an integer, land upward).</summary>
    public static TheoryData<bool, int, int, int[]> BucketRuns => new()
    {
        // t5-small's 32 buckets, max distance 128
        { true, 32, 128, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 12, 10, 16, 11, 23, 12, 32, 13, 46, 14, 64, 15, 91] },
        { false, 32, 128, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15,
            16, 16, 17, 19, 18, 21, 19, 24, 20, 27, 21, 31, 22, 35, 23, 40, 24, 46, 25, 52, 26, 59, 27, 67, 28, 77, 29, 87, 30, 99, 31, 113] },
        // t5-micro's 8 buckets, max distance 16
        { true, 8, 16, [0, 0, 1, 1, 2, 2, 3, 6] },
        { false, 8, 16, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 6, 8, 7, 12] },
    };

    [Theory, MemberData(nameof(BucketRuns))]
    public void RelativeBucketsAreHuggingFaces(bool bidirectional, int buckets, int maxDistance, int[] runs)
    {
        int Expected(int n)
        {
            int bucket = 0;
            for (int r = 0; r < runs.Length; r += 2) if (n >= runs[r + 1]) bucket = runs[r];
            return bucket;
        }
        const int N = 300;
        // one query at position N − 1 over keys 0..N−1 (distance N−1−j before it), and one query at 0 over keys after it
        var before = EncoderDecoder.RelativeBuckets(1, N, N - 1, bidirectional, buckets, maxDistance);
        var after = EncoderDecoder.RelativeBuckets(1, N, 0, bidirectional, buckets, maxDistance);
        for (int n = 0; n < N; n++)
        {
            Assert.Equal(Expected(n), before[N - 1 - n]);
            Assert.Equal(n == 0 ? 0 : bidirectional ? buckets / 2 + Expected(n) : 0, after[n]);
        }
    }

    [Fact]
    public void RelativeBucketsHaveT5sStructure()
    {
        // hand-checked (t5-small): rp = j − i; bidirectional nb = 16 per side, max_exact 8;
        // rp = −20: 8 + ⌊ln(20/8)/ln(16)·8⌋ = 8 + ⌊2.64⌋ = 10; rp = +20: 16 + 10 = 26; causal rp = −20: 16 + ⌊ln(20/16)/ln(8)·16⌋ = 16 + 1 = 17
        Assert.Equal(10, EncoderDecoder.RelativeBuckets(21, 1, 0, true, 32, 128)[20]);
        Assert.Equal(26, EncoderDecoder.RelativeBuckets(1, 21, 0, true, 32, 128)[20]);
        Assert.Equal(17, EncoderDecoder.RelativeBuckets(21, 1, 0, false, 32, 128)[20]);
        Assert.Equal(15, EncoderDecoder.RelativeBuckets(1, 1, 1000, true, 32, 128)[0]);     // beyond max distance: the last bucket
        Assert.Equal(31, EncoderDecoder.RelativeBuckets(1, 1001, 0, true, 32, 128)[1000]);

        const int T = 40;
        foreach (var (nb, md) in new[] { (32, 128), (8, 16), (6, 7) })
        {
            var bi = EncoderDecoder.RelativeBuckets(T, T, 0, true, nb, md);
            var causal = EncoderDecoder.RelativeBuckets(T, T, 0, false, nb, md);
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++)
                {
                    int rp = j - i;
                    // translation invariant: a function of j − i only
                    Assert.Equal(bi[rp >= 0 ? j - i : (i - j) * T], bi[i * T + j]);
                    // bidirectional: keys after the query use the upper half, mirroring the lower
                    if (rp > 0) Assert.Equal(bi[j * T + i] + nb / 2, bi[i * T + j]);
                    Assert.InRange(bi[i * T + j], 0, nb - 1);
                    // causal: the future is bucket 0, the past counts distance in all nb buckets
                    if (rp > 0) Assert.Equal(0, causal[i * T + j]);
                    Assert.InRange(causal[i * T + j], 0, nb - 1);
                    // monotone in distance
                    if (j > 0 && rp <= 0) Assert.True(bi[i * T + j - 1] >= bi[i * T + j] && causal[i * T + j - 1] >= causal[i * T + j]);
                }
            // a cached step's row (query offset p) is row p of the whole table
            for (int p = 0; p < T; p++)
                Assert.Equal(causal.AsSpan(p * T, T).ToArray(), EncoderDecoder.RelativeBuckets(1, T, p, false, nb, md));
        }
    }

    // ---- generation ---------------------------------------------------------------------------------------------------

    /// <summary>The cached path runs the same ops on other groupings (one query row per step over the cache's keys, the
    /// cross keys computed once): f32 rounding ≈ 1e-6 relative; 1e-4 of (|b| + RMS) per element, NMSE 1e-8 (as KvCacheTests).</summary>
    private static readonly Tolerance CachedLogits = new(1e-8, 1e-4, "cached vs full decoder: the same ops, rows grouped differently");

    public static TheoryData<string, string> GenerationCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var subject in Backends.Subjects.Select(s => s.Name).Where(n => n is "cpu-fast" or "vulkan"))
            foreach (var name in Configs.Keys) data.Add(subject, name);
        return data;
    }

    [Theory, MemberData(nameof(GenerationCases))]
    public void CachedGenerationEqualsUncached(string subject, string name)
    {
        var backend = Backends.Subjects.Single(s => s.Name == subject).Backend;
        var model = new EncoderDecoder(backend, Configs[name] with { ContextLength = 16, VocabSize = 29 });
        model.InitializeWeights(11);
        int[] source = [3, 7, 2, 9, 14, 5];
        List<float[]> cachedLogits = [], fullLogits = [];
        var cached = Seq2SeqGenerator.Run(model, source, 12, new Sampler(new SamplingOptions { Temperature = 0 }), null, cached: true, cachedLogits);
        var full = Seq2SeqGenerator.Run(model, source, 12, new Sampler(new SamplingOptions { Temperature = 0 }), null, cached: false, fullLogits);
        Assert.Equal(12, cached.Count);
        Assert.Equal(full, cached);
        for (int i = 0; i < cached.Count; i++)
            Compare.Check(Backends.Context, name + " cached decode", subject, $"logits of step {i}", [cachedLogits[i].Length],
                cachedLogits[i].Select(x => (double)x).ToArray(), fullLogits[i].Select(x => (double)x).ToArray(), CachedLogits, name);
        // the stop token ends generation after it: greedy decoding stops at the first step whose argmax is it
        var stopped = Seq2SeqGenerator.Generate(model, source, 12, new Sampler(new SamplingOptions { Temperature = 0 }), stopToken: cached[4]);
        Assert.Equal(cached.Take(cached.IndexOf(cached[4]) + 1), stopped);
    }

    // ---- training -----------------------------------------------------------------------------------------------------

    /// <summary>Steps of two source → target batches in turn (the target the source reversed, decoder inputs the targets
    /// shifted right behind the start token, as the span objective builds them) through the Trainer: the losses per step.</summary>
    internal static List<double> Train(IBackend backend, EncoderDecoderConfig config, int steps = 10)
    {
        const int B = 4, Te = 10, T = 8;   // Te ≠ T: cross-attention's Tq ≠ Tk
        var rng = new Rng(5);
        var pool = Enumerable.Range(0, 2).Select(_ =>
        {
            var source = Values.Ids(rng, B * Te, config.VocabSize - 2).Select(x => x + 2).ToArray();   // no pad or eos in the source
            var targets = new int[B * T];
            var inputs = new int[B * T];
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++)
                {
                    targets[b * T + t] = source[b * Te + Te - 1 - t];                                 // the source reversed
                    inputs[b * T + t] = t == 0 ? config.DecoderStartToken : targets[b * T + t - 1];   // shifted right
                }
            return new TokenBatch(inputs, targets, B, T) { EncoderInputs = source, EncoderLength = Te };
        }).ToList();
        var model = new EncoderDecoder(backend, config);
        model.InitializeWeights(42);
        var trainer = new Trainer(model, new OptimizerOptions { WarmupSteps = 2, LearningRate = 1e-2f }, steps) { DropoutSeed = 77 };
        return [.. Enumerable.Range(0, steps).Select(s => trainer.Step([pool[s % 2]]).Loss)];
    }

    /// <summary>The mean loss of the last two steps (the two batches once each) against the first two.</summary>
    internal static bool Learned(List<double> losses, double by) => (losses[^1] + losses[^2]) / 2 < (losses[0] + losses[1]) / 2 - by;

    [Fact]
    public void TrainingOnTheReferenceLowersTheLoss()
    {
        var losses = Train(new CpuBackend(), EncoderDecoderConfig.T5Micro);
        Assert.True(Learned(losses, 0.5), $"10 steps should lower the loss: {string.Join(", ", losses.Select(l => l.ToString("F4")))}");
    }
}
