using Llm.Common;
using Llm.Cpu;
using Llm.Inference;
using Llm.Models;
using Llm.Text;
using Xunit;

namespace Llm.Conformance.Text;

/// <summary>Messages the CLI may print as they are: they read alone, without .NET's "(Parameter 'x')" and
/// "Actual value was ..." tails that a parameter name brings.</summary>
public sealed class StandAloneMessageTests
{
    public static TheoryData<string, Action> Throwers() => new()
    {
        { "batch size B must be positive, got 0", () => _ = new TokenDataset(new int[100], 0, 4) },
        { "sequence length T must be positive, got -2", () => _ = new TokenDataset(new int[100], 2, -2) },
        { "validation fraction must lie in [0, 1), got 1", () => _ = new TokenDataset(new int[100], 2, 4, validationFraction: 1) },
        { "token 300 at position 0", () => _ = new TokenDataset([300], 1, 1, vocabSize: 256) },
        { "loader position must be non-negative, got -1", () => new TokenDataset(new int[100], 2, 4).Position = -1 },
        { "validation batch index 9", () => new TokenDataset(new int[100], 2, 4).ValidationBatch(9) },
        { "negative token -1", () => TokenDataset.UnigramEntropy([-1]) },
        { "needs n > 0, got n = 0", () => new Rng(1).NextInt(0) },
        { "unknown tokenizer 'morse'", () => Tokenizers.Create("morse") },
        { "token id 300 at position 1", () => new ByteTokenizer().Decode([65, 300]) },
        { "corpus file name is empty", () => Corpus.Load(" ") },
        { "softmax temperature must be > 0, got 0", () => Sampler.Softmax(new double[3], 0) },
        { "repetition penalty must be > 0, got -1", () => Sampler.ApplyRepetitionPenalty(new double[3], [0], -1) },
        { "generated token 7", () => Sampler.ApplyRepetitionPenalty(new double[3], [7], 2) },
        { "the model produced a non-finite value", () => new Sampler().Next([0f, float.NaN]) },
        { "the number of new tokens must be ≥ 0, got -1", () => Generator.Generate(new Decoder(new CpuBackend(), DecoderConfig.Micro), [1], -1, new Sampler()).ToList() },
    };

    [Theory]
    [MemberData(nameof(Throwers))]
    public void Message_reads_alone(string expected, Action thrower)
    {
        var e = Assert.ThrowsAny<ArgumentException>(thrower);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain("(Parameter", e.Message);
        Assert.DoesNotContain("Actual value was", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
