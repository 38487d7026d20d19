using Llm.Cpu;
using Llm.Models;
using Llm.Text;
using Llm.Training;
using Xunit;

namespace Llm.Conformance.Model;

/// <summary>GPT-2 keeps every result it had before the decoder became a catalogue: six CPU training steps give the same
/// losses and the same final weights, bit for bit, as the GPT-2-only model of commit c496b2c (recorded then).</summary>
public sealed class Gpt2GoldenTests
{
    private static readonly long[] LossBits =
        [0x40161E98AE555555L, 0x4015FA2FA9000000L, 0x4015B0F53E555555L, 0x40156142B4AAAAABL, 0x401516937E555555L, 0x4014F33621000000L];
    private const long WeightHash = 0x06CD92914A5BA9C0L;   // h = 31·h + bits(w) over every weight in declaration order

    [Fact]
    public void SixCpuStepsGiveTheRecordedLossesAndWeights()
    {
        var config = new DecoderConfig { VocabSize = 256, ContextLength = 32, Layers = 2, Heads = 4, Channels = 32 };
        var model = new Decoder(new CpuBackend(), config);
        model.InitializeWeights(11);
        var trainer = new Trainer(model, new OptimizerOptions { LearningRate = 1e-3f, WarmupSteps = 1 }, totalSteps: 100);
        var tokens = new ByteTokenizer().Encode(Corpus.PrideAndPrejudice[..2000]);
        const int B = 3, T = 32;
        var losses = new long[LossBits.Length];
        for (int step = 0; step < losses.Length; step++)
        {
            var inputs = tokens[(step * B * T)..((step + 1) * B * T)];
            var targets = tokens[(step * B * T + 1)..((step + 1) * B * T + 1)];
            losses[step] = BitConverter.DoubleToInt64Bits(trainer.Step([(inputs, targets)], B, T).Loss);
        }
        Assert.Equal(LossBits, losses);
        long hash = 17;
        foreach (float w in model.Parameters.DownloadValues()) hash = unchecked(hash * 31 + BitConverter.SingleToInt32Bits(w));
        Assert.Equal(WeightHash, hash);
    }
}
