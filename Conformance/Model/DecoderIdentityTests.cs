using Llm.Autograd;
using Llm.Checks;
using Llm.Cpu;
using Llm.Models;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Model;

/// <summary>Whole-model identities of the catalogue: DeepNorm with α = 1 is post-norm; DeepNet's constants; ALiBi's
/// slopes for any head count; the sinusoidal table.</summary>
public sealed class DecoderIdentityTests
{
    private static readonly DecoderConfig Post = new()
    {
        VocabSize = 19, ContextLength = 9, Layers = 3, Heads = 2, Channels = 8, Placement = NormPlacement.Post, Positions = PositionKind.Rope,
    };

    [Fact]
    public void DeepNormWithAlphaOneIsPostNorm()
    {
        var deep = Post with { DeepNorm = true };
        // the same weights: DeepNorm changes the init (its β gains), so both load the post-norm model's
        var cpu = new CpuBackend();
        var post = new Decoder(cpu, Post);
        post.InitializeWeights(3);
        var weights = post.Parameters.DownloadValues();
        double[] Run(DecoderConfig config)
        {
            var model = new Decoder(cpu, config);
            int at = 0;
            foreach (var p in model.Parameters.All) { cpu.Upload<float>(weights.AsSpan(at, p.Value.Length), p.Value); at += p.Value.Length; }
            using var tape = new Tape(cpu, recording: false);
            var ids = cpu.Allocate(DType.I32, [1, 6]);
            cpu.Upload<int>([1, 5, 3, 18, 0, 7], ids);
            return OpCheck.Download(cpu, model.Forward(tape, ids).Value);
        }
        Assert.Equal(Run(Post), Run(deep with { DeepNormAlpha = 1 }));
        Assert.NotEqual(Run(Post), Run(deep));   // DeepNet's α = (2N)^¼ ≈ 1.57 does change the model
    }

    [Fact]
    public void DeepNetConstants()
    {
        var (alpha, beta) = (Post with { Layers = 12 }).DeepNormConstants();
        Assert.Equal(Math.Pow(24, 0.25), alpha, 12);       // decoder-only: (2N)^¼, (8N)^−¼
        Assert.Equal(Math.Pow(96, -0.25), beta, 12);
        var (ea, eb) = (Post with { Layers = 6, DeepNormKind = DeepNormKind.EncoderDecoderEncoder }).DeepNormConstants(decoderLayers: 6);
        Assert.Equal(0.81 * Math.Pow(Math.Pow(6, 4) * 6, 1.0 / 16), ea, 12);   // encoder of an encoder-decoder: 0.81(N⁴M)^(1/16)
        Assert.Equal(0.87 * Math.Pow(Math.Pow(6, 4) * 6, -1.0 / 16), eb, 12);
        var (da, db) = (Post with { Layers = 6, DeepNormKind = DeepNormKind.EncoderDecoderDecoder }).DeepNormConstants();
        Assert.Equal(Math.Pow(18, 0.25), da, 12);          // its decoder: (3M)^¼, (12M)^−¼
        Assert.Equal(Math.Pow(72, -0.25), db, 12);
    }

    [Fact]
    public void DeepNormInitialisesValueOutAndFfnWithGainBeta()
    {
        var config = Post with { DeepNorm = true, Layers = 8, Channels = 64, Heads = 4, VocabSize = 50 };
        var model = new Decoder(new CpuBackend(), config);
        model.InitializeWeights(9);
        double beta = config.DeepNormConstants().Beta;
        double Std(string name) { var w = model.Parameters[name].Value; var x = OpCheck.Download(w.Backend, w); return Math.Sqrt(x.Average(v => v * v)); }
        double xavierSquare = Math.Sqrt(2.0 / (64 + 64)), xavierFfn = Math.Sqrt(2.0 / (64 + 256));
        Assert.InRange(Std("h.3.attn.c_proj.weight") / (beta * xavierSquare), 0.9, 1.1);
        Assert.InRange(Std("h.3.mlp.c_fc.weight") / (beta * xavierFfn), 0.9, 1.1);
    }

    [Fact]
    public void AlibiSlopesFollowPressEtAlForAnyHeadCount()
    {
        Assert.Equal([0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625], Decoder.AlibiSlopes(8));
        // 12 heads (BLOOM-560M's 16 is a power of two; 12 is not): the 8 of the power of two below, then 4 of the 16-head set's odd ones
        var s16 = Enumerable.Range(1, 16).Select(h => Math.Pow(2, -8.0 * h / 16)).ToArray();
        Assert.Equal([.. Decoder.AlibiSlopes(8), s16[0], s16[2], s16[4], s16[6]], Decoder.AlibiSlopes(12));
        Assert.Equal([Math.Pow(2, -4), Math.Pow(2, -8), Math.Pow(2, -2)], Decoder.AlibiSlopes(3));
    }

    [Fact]
    public void SinusoidsAreVaswanisTable()
    {
        var table = Decoder.Sinusoids(50, 6);
        Assert.Equal(Math.Sin(7 / Math.Pow(10000, 2.0 / 6)), table[7 * 6 + 2], 14);
        Assert.Equal(Math.Cos(7 / Math.Pow(10000, 4.0 / 6)), table[7 * 6 + 5], 14);
        Assert.Equal([0, 1, 0, 1, 0, 1], table[..6]);
    }
}
