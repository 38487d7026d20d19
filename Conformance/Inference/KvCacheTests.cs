using Llm.Autograd;
using Llm.Checks;
using Llm.Conformance.Harness;
using Llm.Conformance.Model;
using Llm.Inference;
using Llm.Models;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Inference;

/// <summary>
/// Cached decoding equals the full forward: on every subject and every preset (random weights at a micro size), the
/// logits of tokens fed one at a time through the KV cache match a forward over the whole sequence, greedy decoding
/// gives the same tokens with and without the cache, and batched prompts of different lengths continue exactly as
/// each would alone.
/// </summary>
public sealed class KvCacheTests
{
    /// <summary>The cached path runs the same ops on a different grouping (one query row per forward, keys from the
    /// cache): f32 rounding differs by ~1e-6 relative over two blocks; 1e-4 per element of (|b| + RMS), NMSE 1e-8.</summary>
    private static readonly Tolerance CachedLogits = new(1e-8, 1e-4, "cached vs full forward: the same ops, rows grouped differently");

    public static Xunit.TheoryData<string, string> Cases()
    {
        var data = new Xunit.TheoryData<string, string>();
        // the CPU fast paths and one Vulkan variant: the cache is model code above the backend, its ops are checked elsewhere
        foreach (var subject in Backends.Subjects.Select(s => s.Name).Where(n => n is "cpu-fast" or "vulkan"))
            foreach (var preset in ModelCase.Configs.Keys)
                data.Add(subject, preset);
        return data;
    }

    private static IBackend Open(string subject) => Backends.Subjects.Single(s => s.Name == subject).Backend;

    private static Decoder Model(IBackend backend, string preset, int context = 24)
    {
        var config = ModelCase.Configs[preset] with { ContextLength = context, VocabSize = 31 };
        // A cached step routes one token, which no capacity drops; the full forward routes all T at once and drops past
        // ⌈k·T·factor/E⌉ per expert. They agree when the full forward's capacity holds every token: factor E/k.
        if (config.Moe is { } moe) config = config with { Moe = moe with { EvalCapacityFactor = (float)moe.Experts / moe.TopK } };
        var model = new Decoder(backend, config);
        model.InitializeWeights(5);
        return model;
    }

    [Theory, MemberData(nameof(Cases))]
    public void OneTokenAtATimeMatchesTheWholeSequence(string subject, string preset)
    {
        var backend = Open(subject);
        var model = Model(backend, preset);
        int[] tokens = [3, 17, 5, 29, 11, 2, 8, 23, 14, 1, 30];
        int T = tokens.Length, V = model.Config.VocabSize;
        using var tape = new Tape(backend, recording: false);
        var ids = tape.Temp(DType.I32, [1, T]);
        backend.Upload<int>(tokens, ids);
        var full = OpCheck.Download(backend, model.Forward(tape, ids).Value);               // [1, T, V]
        tape.Reset();

        using var cache = new KvCache(model, 1, 24);
        var cached = new double[T * V];
        foreach (var (start, count) in new[] { (0, 4), (4, 1), (5, 1), (6, 3), (9, 1), (10, 1) })   // a prefill, then steps
        {
            var step = tape.Temp(DType.I32, [1, count]);
            backend.Upload<int>(tokens.AsSpan(start, count), step);
            OpCheck.Download(backend, model.Forward(tape, step, new DecoderInputs { Cache = cache }).Value).CopyTo(cached, start * V);
            tape.Reset();
        }
        Assert.Equal(T, cache.Length);
        Compare.Check(Backends.Context, "KV cache", subject, $"{preset} logits", [1, T, V], cached, full, CachedLogits, preset);
    }

    [Theory, MemberData(nameof(Cases))]
    public void GreedyDecodingGivesTheSameTokensWithAndWithoutTheCache(string subject, string preset)
    {
        var model = Model(Open(subject), preset, context: 16);
        var greedy = new SamplingOptions { Temperature = 0 };
        int[] prompt = [4, 9, 2];
        // 30 tokens in a context of 16: the cached path refills its window (the uncached one slides it every step),
        // so only the first 13 new tokens, seen through the same window, must agree
        var cached = Generator.Generate(model, prompt, 30, new Sampler(greedy)).ToArray();
        var full = Generator.GenerateWithoutCache(model, prompt, 13, new Sampler(greedy)).ToArray();
        Assert.Equal(30, cached.Length);
        Assert.Equal(full, cached[..13]);
    }

    [Theory, MemberData(nameof(Cases))]
    public void BatchedPromptsOfDifferentLengthsContinueAsAlone(string subject, string preset)
    {
        if (ModelCase.Configs[preset].Window > 0 || ModelCase.Configs[preset].Sparse != SparsePattern.None)
            return;   // left padding shifts absolute positions; window and sparse patterns are over absolute positions
        var model = Model(Open(subject), preset);
        var greedy = new SamplingOptions { Temperature = 0 };
        int[][] prompts = [[4, 9, 2], [7, 1, 30, 12, 5, 6, 19], [3], [8, 8, 8, 8, 8]];
        var batched = Generator.GenerateBatch(model, prompts, 8, new Sampler(greedy));
        for (int b = 0; b < prompts.Length; b++)
            Assert.Equal(Generator.Generate(model, prompts[b], 8, new Sampler(greedy)).ToArray(), batched[b]);
    }
}
