using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Llm.Inference;
using Xunit;

namespace Llm.Conformance.Text;

public class SamplerTests
{
    // Logits rows of 1..60 entries in [-10, 10] with two decimals; ties happen, which tests the tie rules too.
    static readonly Gen<float[]> LogitsGen =
        Gen.Choose(-1000, 1000).Select(i => i / 100f).NonEmptyListOf().Select(l => l.Take(60).ToArray());

    static readonly Arbitrary<(float[] Logits, ulong Seed)> LogitsAndSeed =
        LogitsGen.Zip(Gen.Choose(0, int.MaxValue).Select(s => (ulong)s)).Select(p => (p.Item1, p.Item2)).ToArbitrary();

    static int Argmax(float[] logits)
    {
        int best = 0;
        for (int v = 1; v < logits.Length; v++) if (logits[v] > logits[best]) best = v;
        return best;
    }

    static double[] Softmax(float[] logits, double temperature)
    {
        double max = logits.Max();
        double[] e = logits.Select(l => Math.Exp((l - max) / temperature)).ToArray();
        double sum = e.Sum();
        return e.Select(x => x / sum).ToArray();
    }

    [Property(MaxTest = 200)]
    public Property Greedy_picks_the_argmax() =>
        Prop.ForAll(LogitsAndSeed, c =>
            new Sampler(new SamplingOptions { Temperature = 0, Seed = c.Seed }).Next(c.Logits) == Argmax(c.Logits));

    [Property(MaxTest = 200)]
    public Property Top_k_of_one_equals_greedy() =>
        Prop.ForAll(LogitsAndSeed, c =>
        {
            var sampler = new Sampler(new SamplingOptions { TopK = 1, Temperature = 1.7f, Seed = c.Seed });
            return Enumerable.Range(0, 5).All(_ => sampler.Next(c.Logits) == Argmax(c.Logits));
        });

    [Property(MaxTest = 200)]
    public Property Tiny_top_p_equals_greedy() =>
        Prop.ForAll(LogitsAndSeed, c =>
        {
            var sampler = new Sampler(new SamplingOptions { TopP = 1e-6f, Temperature = 2f, Seed = c.Seed });
            return Enumerable.Range(0, 5).All(_ => sampler.Next(c.Logits) == Argmax(c.Logits));
        });

    [Property(MaxTest = 200)]
    public Property Top_k_never_samples_outside_the_k_largest() =>
        Prop.ForAll(LogitsAndSeed.Zip(Gen.Choose(1, 10).ToArbitrary()), p =>
        {
            var ((logits, seed), k) = p;
            // the k-th largest logit; with ties at the boundary the lower ids are kept, so allow only >= it
            float threshold = logits.OrderByDescending(l => l).ElementAt(Math.Min(k, logits.Length) - 1);
            var sampler = new Sampler(new SamplingOptions { TopK = k, Temperature = 5f, Seed = seed });
            var drawn = Enumerable.Range(0, 50).Select(_ => sampler.Next(logits)).ToArray();
            return drawn.All(v => logits[v] >= threshold)
                && sampler.Distribution(logits).ToArray().Count(q => q > 0) <= k;
        });

    [Property(MaxTest = 100)]
    public Property Same_seed_gives_the_same_sequence() =>
        Prop.ForAll(LogitsAndSeed, c =>
        {
            var options = new SamplingOptions { Seed = c.Seed, TopK = 20, TopP = 0.9f, Temperature = 0.8f };
            var a = new Sampler(options);
            var b = new Sampler(options);
            return Enumerable.Range(0, 40).All(_ => a.Next(c.Logits) == b.Next(c.Logits));
        });

    [Fact]
    public void Different_seeds_give_different_sequences()
    {
        float[] logits = new float[50]; // uniform: 50^40 sequences, a collision is impossible in practice
        int[] Draw(ulong seed)
        {
            var sampler = new Sampler(new SamplingOptions { Seed = seed });
            return Enumerable.Range(0, 40).Select(_ => sampler.Next(logits)).ToArray();
        }
        Assert.NotEqual(Draw(1), Draw(2));
        Assert.Equal(Draw(3), Draw(3));
    }

    [Theory]
    [InlineData(1.0f)]
    [InlineData(0.6f)]
    [InlineData(2.5f)]
    public void Empirical_frequencies_match_the_tempered_softmax(float temperature)
    {
        float[] logits = [1f, 2f, 0.5f, -1f, 3f, 0f, 2f];
        double[] expected = Softmax(logits, temperature);
        const int draws = 100_000;
        var counts = new int[logits.Length];
        var sampler = new Sampler(new SamplingOptions { Temperature = temperature, Seed = 42 });
        for (int i = 0; i < draws; i++) counts[sampler.Next(logits)]++;
        for (int v = 0; v < logits.Length; v++)
        {
            double p = expected[v];
            double standardError = Math.Sqrt(p * (1 - p) / draws);
            // 5 standard errors: a correct sampler fails this with probability ~1e-6 per token
            Assert.True(Math.Abs(counts[v] / (double)draws - p) <= 5 * standardError + 1e-9,
                $"token {v}: frequency {counts[v] / (double)draws:F5}, softmax {p:F5} (T = {temperature})");
        }
    }

    [Fact]
    public void Empirical_frequencies_match_the_renormalized_top_k_top_p_distribution()
    {
        // p = (0.5, 0.3, 0.15, 0.05). top-k 3 keeps 0.95 → (0.526, 0.316, 0.158); top-p 0.8 of that stops at
        // cumulative 0.842 ≥ 0.8 after two tokens → (0.625, 0.375)
        float[] logits = [MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.15f), MathF.Log(0.05f)];
        var sampler = new Sampler(new SamplingOptions { TopK = 3, TopP = 0.8f, Seed = 7 });
        double[] distribution = sampler.Distribution(logits).ToArray();
        Assert.Equal(0.625, distribution[0], 6);
        Assert.Equal(0.375, distribution[1], 6);
        Assert.Equal(0.0, distribution[2]);
        Assert.Equal(0.0, distribution[3]);

        const int draws = 50_000;
        int zeros = 0;
        for (int i = 0; i < draws; i++)
        {
            int v = sampler.Next(logits);
            Assert.InRange(v, 0, 1);
            if (v == 0) zeros++;
        }
        Assert.InRange(zeros / (double)draws, 0.625 - 5 * Math.Sqrt(0.625 * 0.375 / draws), 0.625 + 5 * Math.Sqrt(0.625 * 0.375 / draws));
    }

    [Theory]
    [InlineData(0.45f, 1)] // 0.5 ≥ 0.45 already
    [InlineData(0.75f, 2)] // 0.5 + 0.3
    [InlineData(0.85f, 3)] // + 0.15
    [InlineData(0.99f, 4)]
    public void Top_p_keeps_the_smallest_set_reaching_p(float topP, int kept)
    {
        float[] logits = [MathF.Log(0.3f), MathF.Log(0.05f), MathF.Log(0.5f), MathF.Log(0.15f)]; // order shuffled
        double[] q = new Sampler(new SamplingOptions { TopP = topP }).Distribution(logits).ToArray();
        Assert.Equal(kept, q.Count(x => x > 0));
        int[] byRank = [2, 0, 3, 1];
        Assert.All(byRank.Take(kept), v => Assert.True(q[v] > 0));
        Assert.Equal(1.0, q.Sum(), 9);
    }

    [Fact]
    public void Softmax_subtracts_the_max_so_large_logits_do_not_overflow()
    {
        double[] logits = [1000, 999, -1000];
        Sampler.Softmax(logits, 1);
        Assert.Equal(1 / (1 + Math.Exp(-1)), logits[0], 12);
        Assert.Equal(Math.Exp(-1) / (1 + Math.Exp(-1)), logits[1], 12);
        Assert.Equal(0, logits[2], 12);
    }

    [Fact]
    public void Masked_logits_are_never_sampled()
    {
        float[] logits = [float.NegativeInfinity, 0f, float.NegativeInfinity, 0f];
        var sampler = new Sampler(new SamplingOptions { Temperature = 3f, Seed = 5 });
        for (int i = 0; i < 2000; i++) Assert.True(sampler.Next(logits) is 1 or 3);
    }

    [Fact]
    public void Repetition_penalty_divides_positive_and_multiplies_negative_logits_once_per_token()
    {
        double[] logits = [2, -2, 1, 0.5];
        Sampler.ApplyRepetitionPenalty(logits, [0, 1, 1, 0], 2);
        Assert.Equal([1, -4, 1, 0.5], logits);

        // greedy would repeat token 0; with the penalty it moves to token 2
        float[] row = [2f, -2f, 1.5f];
        Assert.Equal(0, new Sampler(new SamplingOptions { Temperature = 0 }).Next(row, [0]));
        Assert.Equal(2, new Sampler(new SamplingOptions { Temperature = 0, RepetitionPenalty = 2 }).Next(row, [0]));

        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            new Sampler(new SamplingOptions { RepetitionPenalty = 1.3f }).Next(row, [3]));
        Assert.Contains("generated token 3", e.Message);
    }

    [Theory]
    [InlineData(-0.1f, 0, 1f, 1f, "Temperature")]
    [InlineData(float.NaN, 0, 1f, 1f, "Temperature")]
    [InlineData(1f, -1, 1f, 1f, "TopK")]
    [InlineData(1f, 0, 0f, 1f, "TopP")]
    [InlineData(1f, 0, 1.01f, 1f, "TopP")]
    [InlineData(1f, 0, -0.5f, 1f, "TopP")]
    [InlineData(1f, 0, 1f, 0f, "RepetitionPenalty")]
    public void Invalid_options_are_rejected_by_name(float temperature, int topK, float topP, float penalty, string field)
    {
        var options = new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, RepetitionPenalty = penalty };
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(options));
        Assert.Equal(field, e.ParamName);
    }

    [Fact]
    public void Non_finite_or_empty_logits_are_rejected()
    {
        var sampler = new Sampler();
        var e = Assert.Throws<ArgumentException>(() => sampler.Next([0f, float.NaN, 1f]));
        Assert.Contains("token 1", e.Message);
        Assert.Throws<ArgumentException>(() => sampler.Next([float.PositiveInfinity]));
        Assert.Throws<ArgumentException>(() => sampler.Next([float.NegativeInfinity, float.NegativeInfinity]));
        Assert.Throws<ArgumentException>(() => sampler.Next(ReadOnlySpan<float>.Empty));
    }

    [Fact]
    public void Sampler_state_is_its_rng_state()
    {
        float[] logits = [0.1f, 0.4f, 0.2f, 0.9f, -0.3f];
        var a = new Sampler(new SamplingOptions { Seed = 99 });
        for (int i = 0; i < 17; i++) a.Next(logits);
        var b = new Sampler(new SamplingOptions { Seed = 0 });
        b.Rng.State = a.Rng.State;
        for (int i = 0; i < 20; i++) Assert.Equal(a.Next(logits), b.Next(logits));
    }
}
