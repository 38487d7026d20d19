using Llm.Autograd;
using Llm.Checks;
using Llm.Conformance.Harness;
using Llm.Cpu;
using Llm.Inference;
using Llm.Models;
using Llm.Tensors;
using Llm.Training;
using Xunit;

namespace Llm.Conformance.Model;

/// <summary>Memory that stays bounded: the tape's pool, device memory over many passes, sizes past 2^31 elements.</summary>
public sealed class MemoryTests
{
    private static Decoder Micro(IBackend backend, int? maxArenaElements = null)
    {
        var config = DecoderConfig.Micro;
        var model = maxArenaElements is null ? new Decoder(backend, config)
            : new Decoder(config, new ParameterSet(backend, config.ParameterSpecs(), maxArenaElements: maxArenaElements));
        model.InitializeWeights(11);
        return model;
    }

    /// <summary>What one forward at [1, T] leaves in a fresh tape's pool: the bound sampling must stay within.</summary>
    private static long OneForward(Decoder model, int T)
    {
        using var tape = new Tape(model.Backend, recording: false);
        var ids = tape.Temp(DType.I32, [1, T]);
        model.Backend.Upload<int>(new int[T], ids);
        model.Forward(tape, ids);
        tape.Reset();
        return tape.PooledBytes;
    }

    [Fact]
    public void Sampling_holds_one_forward_at_the_current_length()
    {
        var model = Micro(new CpuBackend());
        var greedy = new SamplingOptions { Temperature = 0 };

        // Without the cache, a growing sequence (T = 1 .. 15): the pool ends as large as one forward at the last length, not the sum of all.
        using (var tape = new Tape(model.Backend, recording: false))
        {
            var tokens = Generator.GenerateWithoutCache(model, [65], 15, new Sampler(greedy), tape).ToList();
            Assert.Equal(15, tokens.Count);
            Assert.Equal(OneForward(model, 15), tape.PooledBytes);
        }

        // A full window (T = ContextLength every step): the pool does not grow with the number of tokens, with the
        // cache (one token per step, the cache refilled from half the window when full) or without.
        int[] prompt = [.. Enumerable.Range(60, DecoderConfig.Micro.ContextLength)];
        long Pool(int n, bool cached)
        {
            using var tape = new Tape(model.Backend, recording: false);
            (cached ? Generator.Generate(model, prompt, n, new Sampler(greedy), tape) : Generator.GenerateWithoutCache(model, prompt, n, new Sampler(greedy), tape)).ToList();
            return tape.PooledBytes;
        }
        Assert.Equal(Pool(3, cached: false), Pool(40, cached: false));
        Assert.Equal(OneForward(model, DecoderConfig.Micro.ContextLength), Pool(3, cached: false));
        Assert.Equal(Pool(3, cached: true), Pool(40, cached: true));
        Assert.True(Pool(40, cached: true) < Pool(40, cached: false), "a one-token step holds less than a whole-window forward");
    }

    [Fact]
    public void Size_classes_waste_at_most_an_eighth()
    {
        int previous = 0;
        foreach (int n in Enumerable.Range(1, 5000).Concat([1 << 20, (1 << 20) + 1, 50257 * 1024, int.MaxValue - 1, int.MaxValue]))
        {
            int c = Tape.Capacity(n);
            Assert.True(c >= n && (n <= 16 || c - n <= n / 8 + 1), $"capacity {c} for {n} elements");
            Assert.True(c >= previous, $"capacity {c} for {n} is below the previous one, {previous}");
            previous = c;
        }
    }

    [Fact]
    public void A_disposed_tape_gives_everything_back()
    {
        var model = Micro(new CpuBackend());
        var tape = new Tape(model.Backend);
        var ids = tape.Temp(DType.I32, [2, 8]);
        model.Backend.Upload<int>(new int[16], ids);
        model.Forward(tape, ids);
        Assert.True(tape.PooledBytes > 0);
        tape.Dispose();
        Assert.Equal(0, tape.PooledBytes);
        Assert.Throws<ObjectDisposedException>(() => tape.Temp(DType.F32, [4]));
    }

    [SkippableFact]
    public void Validation_passes_and_evaluations_give_device_memory_back()
    {
        using var vk = Vulkan.VulkanTestDevice.Open();
        string root = Path.Combine(Path.GetTempPath(), "llm-vkmem-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var run = TrainingRun.Start(vk, new TrainOptions { Preset = "micro", Steps = 1, Batch = 2, Seq = 16, EvalBatches = 2, Out = root });
            run.ValidationLoss();
            vk.Synchronize();
            ulong afterOne = vk.BytesAllocated;
            for (int i = 0; i < 19; i++) run.ValidationLoss();
            vk.Synchronize();
            Assert.Equal(afterOne, vk.BytesAllocated);

            // `eval` at shapes of its own, alternating (each new (B, T) also replaces the position ids)
            var tokens = Enumerable.Range(0, 200).Select(i => i % 256).ToArray();
            IEnumerable<(int[], int[])> Batches(int B, int T) => [(tokens[..(B * T)], tokens[1..(B * T + 1)])];
            Trainer.Evaluate(run.Model, Batches(1, 7), 1, 7);
            vk.Synchronize();
            ulong afterEval = vk.BytesAllocated;
            for (int i = 0; i < 10; i++)
            {
                Trainer.Evaluate(run.Model, Batches(3, 16), 3, 16);
                Trainer.Evaluate(run.Model, Batches(1, 7), 1, 7);
            }
            vk.Synchronize();
            Assert.Equal(afterEval, vk.BytesAllocated);
            Vulkan.VulkanTestDevice.AssertClean(vk);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Slices_are_bounds_checked_in_64_bits()
    {
        var backend = new ShapeOnlyBackend();
        var big = backend.Allocate(DType.F32, [int.MaxValue], "big");
        // 2·10⁹ + 5·10⁸ wraps around in 32 bits and used to pass the check
        var e = Assert.Throws<ArgumentException>(() => big.Slice(2_000_000_000, [500_000_000]));
        Assert.Contains("does not fit", e.Message);
        Assert.Equal(2_000_000_000, big.Slice(2_000_000_000, [100_000_000]).Offset);
        Assert.Throws<ArgumentException>(() => backend.Allocate(DType.F32, [65536, 65536]));  // 2^32 elements in one tensor
        Assert.Equal(5, backend.Allocate(DType.F32, [5, 0]).Rows);  // rows of no channels (was a division by zero)
    }

    /// <summary>A LLaMA-7B-sized parameter set: 6.7·10⁹ elements, over three 2^31-element arenas, 64-bit offsets.</summary>
    [Fact]
    public void A_7B_parameter_set_splits_into_arenas_with_64_bit_offsets()
    {
        const int d = 4096, hidden = 11008, vocab = 32000, layers = 32;
        var specs = new List<ParameterSpec> { new("embed_tokens.weight", [vocab, d], true) };
        for (int l = 0; l < layers; l++)
        {
            foreach (string w in new[] { "q", "k", "v", "o" }) specs.Add(new($"layers.{l}.self_attn.{w}_proj.weight", [d, d], true));
            foreach (string w in new[] { "gate", "up" }) specs.Add(new($"layers.{l}.mlp.{w}_proj.weight", [hidden, d], true));
            specs.Add(new($"layers.{l}.mlp.down_proj.weight", [d, hidden], true));
            specs.Add(new($"layers.{l}.input_layernorm.weight", [d], false));
            specs.Add(new($"layers.{l}.post_attention_layernorm.weight", [d], false));
        }
        specs.Add(new("norm.weight", [d], false));
        specs.Add(new("lm_head.weight", [vocab, d], true));

        var set = new ParameterSet(new ShapeOnlyBackend(Array.MaxLength), specs);
        long total = specs.Sum(s => (long)s.Shape.Aggregate(1L, (a, b) => a * b));
        Assert.Equal(6_738_415_616L, total);
        Assert.Equal(total, set.Count);
        Assert.True(set.Arenas.Count >= 4, $"{set.Arenas.Count} arenas");
        long offset = 0;
        foreach (var p in set.Layout)
        {
            var arena = set.Arenas[p.Arena];
            Assert.Equal(offset, p.Offset);
            Assert.Equal(arena.Start + p.ArenaOffset, p.Offset);
            Assert.True(p.ArenaOffset + p.Value.Length <= arena.Values.Length, $"{p.Name} straddles arena {p.Arena}");
            Assert.Same(arena.Values.Storage, p.Value.Storage);
            Assert.Same(arena.Grads!.Storage, p.Grad!.Storage);
            offset += p.Value.Length;
        }
        Assert.True(set["lm_head.weight"].Offset > 1L << 32);
        Assert.All(set.Arenas, a => Assert.True(a.Values.Length <= Array.MaxLength));
    }

    [Fact]
    public void Training_across_several_arenas_equals_training_in_one()
    {
        float[] Train(int? maxArena)
        {
            var model = Micro(new CpuBackend(), maxArena);
            if (maxArena is not null) Assert.True(model.Parameters.Arenas.Count >= 3, $"{model.Parameters.Arenas.Count} arenas");
            var trainer = new Trainer(model, new OptimizerOptions { WarmupSteps = 1, GradientClip = 0 }, totalSteps: 3);
            var tokens = Enumerable.Range(0, 40).Select(i => (i * 7) % 256).ToArray();
            for (int s = 0; s < 3; s++) trainer.Step([(tokens[..32], tokens[1..33])], 2, 16);
            return model.Parameters.DownloadValues();
        }
        Assert.Equal(Train(null), Train(4500));
    }
}
