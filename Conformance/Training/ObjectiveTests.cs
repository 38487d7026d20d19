using Llm.Common;
using Llm.Cpu;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;
using Llm.Training;
using Llm.Training.Objectives;
using Xunit;
using static Llm.Conformance.Training.CliRun;

namespace Llm.Conformance.Training;

/// <summary>The pretraining objectives (causal, prefix LM, T5 span corruption and GLM's blank infilling): their
/// conformance identities, T5's arithmetic, fixed lengths, determinism, and runs that learn and resume.</summary>
public sealed class ObjectiveTests
{
    /// <summary>A raw batch [B, R − 1] of distinct ids from 2 up (0 and 1 are pad and EOS), as the dataset serves it.</summary>
    private static TokenBatch RawBatch(int B, int rawLength, int first = 2)
    {
        int t = rawLength - 1;
        var inputs = new int[B * t];
        var targets = new int[B * t];
        for (int b = 0; b < B; b++)
            for (int i = 0; i < t; i++)
            {
                inputs[b * t + i] = first + b * rawLength + i;
                targets[b * t + i] = first + b * rawLength + i + 1;
            }
        return new TokenBatch(inputs, targets, B, t);
    }

    private static int[] RawRow(TokenBatch raw, int b) =>
        [.. raw.Inputs.AsSpan(b * raw.T, raw.T).ToArray(), raw.Targets[b * raw.T + raw.T - 1]];

    /// <summary>Puts the spans back: every sentinel of the inputs is replaced by the tokens after the same sentinel in
    /// the targets. Asserts the structure on the way (sentinels in order V−1, V−2, …, both end in EOS).</summary>
    private static List<int> Reassemble(SpanCorruption o, ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets)
    {
        Assert.Equal(o.Eos, inputs[^1]);
        Assert.Equal(o.Eos, targets[^1]);
        inputs = inputs[..^1];
        targets = targets[..^1];
        bool IsSentinel(int id) => id >= o.VocabTop - SpanCorruption.SentinelCount && id < o.VocabTop;
        var spans = new List<List<int>>();
        for (int i = 0; i < targets.Length; i++)
        {
            if (IsSentinel(targets[i])) { Assert.Equal(o.Sentinel(spans.Count), targets[i]); spans.Add([]); }
            else { Assert.True(spans.Count > 0, "the targets must start with sentinel 0"); spans[^1].Add(targets[i]); }
        }
        Assert.Equal(o.Spans, spans.Count);
        Assert.All(spans, s => Assert.NotEmpty(s));   // every noise span has ≥ 1 token
        var row = new List<int>();
        int seen = 0;
        foreach (int id in inputs)
        {
            if (IsSentinel(id)) { Assert.Equal(o.Sentinel(seen), id); row.AddRange(spans[seen++]); }
            else row.Add(id);
        }
        Assert.Equal(o.Spans, seen);
        Assert.False(IsSentinel(inputs[0]), "the row must start with non-noise");
        Assert.True(IsSentinel(inputs[^1]), "T5's mask ends with a noise span");
        return row;
    }

    // ---- span corruption keeps every input token exactly once ----------------------------------------------------------

    [Fact]
    public void SpanCorruptionKeepsEveryTokenExactlyOnce_EncoderDecoder()
    {
        for (int seq = 6; seq <= 200; seq += 7)
        {
            var o = new SpanCorruption(seq, encoderDecoder: true, tokenizerVocab: 100_000, pad: 0, eos: 1);
            for (ulong seed = 0; seed < 6; seed++)
            {
                var raw = RawBatch(3, o.RawLength);
                var batch = o.Apply(raw, seed, draw: (long)seed * 13);
                Assert.NotNull(batch.EncoderInputs);
                Assert.Equal(o.InputsLength, batch.EncoderLength);
                Assert.True(batch.EncoderLength <= seq, $"encoder length {batch.EncoderLength} > T = {seq}");
                Assert.Equal(o.TargetsLength, batch.T);
                for (int b = 0; b < 3; b++)
                {
                    var enc = batch.EncoderInputs.AsSpan(b * batch.EncoderLength, batch.EncoderLength);
                    var tgt = batch.Targets.AsSpan(b * batch.T, batch.T);
                    var dec = batch.Inputs.AsSpan(b * batch.T, batch.T);
                    Assert.Equal(RawRow(raw, b), Reassemble(o, enc, tgt));
                    // decoder inputs: the targets shifted right by the decoder start (pad)
                    Assert.Equal(o.Pad, dec[0]);
                    Assert.True(dec[1..].SequenceEqual(tgt[..^1]));
                }
            }
        }
    }

    [Fact]
    public void SpanCorruptionKeepsEveryTokenExactlyOnce_GlmBlankInfilling()
    {
        for (int seq = 6; seq <= 200; seq += 5)
        {
            var o = new SpanCorruption(seq, encoderDecoder: false, tokenizerVocab: 100_000, pad: 0, eos: 1);
            for (ulong seed = 0; seed < 6; seed++)
            {
                var raw = RawBatch(2, o.RawLength);
                var batch = o.Apply(raw, seed, draw: 3 + (long)seed);
                Assert.Null(batch.EncoderInputs);
                Assert.Equal(seq, batch.T);
                int used = o.InputsLength + o.TargetsLength;
                Assert.InRange(seq + 1 - used, 0, 2);   // at most two trailing pads where no raw length fits exactly
                for (int b = 0; b < 2; b++)
                {
                    int P = batch.PrefixLengths![b];
                    Assert.Equal(o.InputsLength, P);
                    var ids = batch.Inputs.AsSpan(b * seq, seq);
                    var tgt = batch.Targets.AsSpan(b * seq, seq);
                    // the row the model reads: [inputs ; targets], its targets the next token on the infilled part only
                    var full = new int[seq + 1];
                    ids.CopyTo(full);
                    full[seq] = tgt[seq - 1] == Trainer.IgnoreIndex ? o.Pad : tgt[seq - 1];
                    for (int t = 0; t < seq; t++)
                        Assert.Equal(t >= P - 1 && t + 1 < used ? full[t + 1] : Trainer.IgnoreIndex, tgt[t]);
                    Assert.Equal(RawRow(raw, b), Reassemble(o, full.AsSpan(0, P), full.AsSpan(P, o.TargetsLength)));
                    Assert.All(full[used..], id => Assert.Equal(o.Pad, id));
                }
            }
        }
    }

    // ---- T5's arithmetic --------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(100, 15, 5)]
    [InlineData(568, 85, 28)]   // T5's default: 568 raw tokens → inputs 512
    [InlineData(10, 2, 1)]      // round(1.5) = 2 (half to even), round(2/3) = 1
    [InlineData(3, 1, 1)]       // round(0.45) = 0, clipped up to 1 noise token; 0 spans, raised to 1
    [InlineData(2, 1, 1)]
    [InlineData(1, 1, 1)]       // T5 raises the length to 2 first
    [InlineData(30, 4, 1)]      // round(4.5) = 4 (half to even), round(4/3) = 1
    [InlineData(70, 10, 3)]     // round(10.5) = 10, round(10/3) = 3
    public void NoiseCountsAreT5s(int length, int noise, int spans)
    {
        Assert.Equal((noise, spans), SpanCorruption.NoiseCounts(length));
    }

    [Fact]
    public void RandomSpansHelperGivesT5sLengths()
    {
        Assert.Equal((568, 512, 114), SpanCorruption.RandomSpansHelper(512));   // T5's span_corruption at inputs_length 512
        Assert.Equal((568, 512, 114), SpanCorruption.T5RandomSpansHelper(512));
        var differ = Enumerable.Range(2, 2047).Where(i => SpanCorruption.T5RandomSpansHelper(i) != SpanCorruption.RandomSpansHelper(i)).ToList();
        // T5's helper counts in double, its mask in float32 (and clipped): they part where L·0.15 rounds differently
        // in the two (e.g. L = 190: 28.4999… in double, 28.500001 in float32), and below 10 where the mask clips. There
        // T5 itself pads or cuts; the counts used here are the mask's, so every row has exactly its lengths.
        static bool Midpoint(int l) => Math.Round(l * 0.15, MidpointRounding.ToEven) != MathF.Round(l * 0.15f);
        foreach (int i in differ.Where(i => i >= 10))
        {
            int l = SpanCorruption.T5RandomSpansHelper(i).TokensLength;
            Assert.True(Midpoint(l) || Midpoint(l + 1), $"inputs length {i}: the helpers differ without a float32/double midpoint at L = {l} or {l + 1}");
        }
        Assert.Equal([2, 3, 4, 5, 6, 7, 8, 9], differ.Where(i => i < 10));
        Assert.True(differ.Count < 30, $"differ at {string.Join(", ", differ)}");
    }

    [Fact]
    public void RandomSegmentationReplaysAGivenShuffle()
    {
        // 5 items in 2 segments: flags [1, 0, 0, 0] (i < 1); shuffled[i] = flags[p[i]]; first_in_segment = [0] ++ shuffled
        Assert.Equal([2, 3], SpanCorruption.RandomSegmentation(5, 2, [2, 0, 1, 3]));    // [0 | 0 1 0 0] → ids 0 0 1 1 1
        Assert.Equal([1, 4], SpanCorruption.RandomSegmentation(5, 2, [0, 1, 2, 3]));    // [0 | 1 0 0 0]
        Assert.Equal([4, 1], SpanCorruption.RandomSegmentation(5, 2, [1, 2, 3, 0]));    // [0 | 0 0 0 1]
        Assert.Equal([1, 1, 1], SpanCorruption.RandomSegmentation(3, 3, [1, 0]));
        Assert.Equal([7], SpanCorruption.RandomSegmentation(7, 1, [5, 4, 3, 2, 1, 0]));
        // 40 tokens: 6 noise in 2 spans, 34 non-noise in 2 spans; identity shuffles give lengths [1, 5] and [1, 33],
        // interleaved non-noise first: 1 clean, 1 noise, 33 clean, 5 noise
        var mask = SpanCorruption.NoiseMask(40, [0, 1, 2, 3, 4], [.. Enumerable.Range(0, 33)]);
        bool[] expected = [false, true, .. Enumerable.Repeat(false, 33), .. Enumerable.Repeat(true, 5)];
        Assert.Equal(expected, mask);
    }

    [Fact]
    public void NoiseMaskHasT5sShape()
    {
        var rng = new Rng(11);
        for (int length = 2; length <= 300; length++)
            for (int k = 0; k < 4; k++)
            {
                var (noise, spans) = SpanCorruption.NoiseCounts(length);
                var mask = SpanCorruption.NoiseMask(length, rng);
                Assert.Equal(length, mask.Length);
                Assert.Equal(noise, mask.Count(m => m));
                Assert.False(mask[0]);                      // starts with non-noise
                Assert.True(mask[^1]);                      // ends with noise
                int runs = Enumerable.Range(0, length).Count(i => mask[i] && (i == 0 || !mask[i - 1]));
                Assert.Equal(spans, runs);                  // n noise spans, each ≥ 1 token (and n non-noise ones between)
            }
    }

    [Fact]
    public void SentinelsComeFromTheTopOfTheVocabulary()
    {
        var o = SpanCorruption.For(64, encoderDecoder: true, new ByteTokenizer());
        Assert.Equal(356, o.VocabTop);        // 256 bytes + 100 sentinels
        Assert.Equal(355, o.Sentinel(0));
        Assert.Equal(100, o.Sentinels);
        Assert.Equal((0, 1), (o.Pad, o.Eos)); // T5's pad and EOS ids: NUL and SOH, which text does not hold
        var batch = o.Apply(RawBatch(1, o.RawLength, first: 32), 1, 0);
        var sentinels = batch.EncoderInputs!.Where(id => id >= 256).ToArray();
        Assert.Equal(Enumerable.Range(0, o.Spans).Select(o.Sentinel), sentinels);
    }

    // ---- determinism --------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("prefix", false)]
    [InlineData("span", false)]
    [InlineData("span", true)]
    public void BatchesDependOnlyOnSeedAndDraw(string name, bool encoderDecoder)
    {
        var o = Objective.Create(name, 48, encoderDecoder, new ByteTokenizer());
        var raw = RawBatch(4, o.RawLength, first: 40);
        static int[] Flat(TokenBatch b) => [.. b.Inputs, .. b.Targets, .. b.PrefixLengths ?? [], .. b.EncoderInputs ?? []];
        Assert.Equal(Flat(o.Apply(raw, 9, 5)), Flat(o.Apply(raw, 9, 5)));
        Assert.NotEqual(Flat(o.Apply(raw, 9, 5)), Flat(o.Apply(raw, 9, 6)));
        Assert.NotEqual(Flat(o.Apply(raw, 9, 5)), Flat(o.Apply(raw, 10, 5)));
        Assert.NotEqual(Flat(o.Apply(raw, 9, 0)), Flat(o.Apply(raw, 9, Objective.ValidationDraw(0))));
        // rows of one batch draw apart
        var a = o.Apply(raw, 9, 5);
        if (a.PrefixLengths is { } p && name == "prefix") Assert.True(p.Distinct().Count() > 1, $"prefix lengths {string.Join(",", p)}");
    }

    [Fact]
    public void CausalIsTheDatasetsBatchUnchanged()
    {
        var o = Objective.Create("causal", 16, false, new ByteTokenizer());
        var raw = RawBatch(2, 17);
        Assert.Same(raw, o.Apply(raw, 1, 0));
        Assert.Throws<ArgumentException>(() => o.Apply(RawBatch(2, 16), 1, 0));   // rows of another length are refused
    }

    // ---- prefix LM ------------------------------------------------------------------------------------------------

    [Fact]
    public void PrefixMasksTheTargetsInsideThePrefix()
    {
        var o = new PrefixObjective(32);
        var raw = RawBatch(8, 33);
        var seen = new HashSet<int>();
        for (int draw = 0; draw < 50; draw++)
        {
            var batch = o.Apply(raw, 3, draw);
            Assert.Same(raw.Inputs, batch.Inputs);
            for (int b = 0; b < 8; b++)
            {
                int P = batch.PrefixLengths![b];
                Assert.InRange(P, 1, 31);
                seen.Add(P);
                for (int t = 0; t < 32; t++)
                    Assert.Equal(t < P - 1 ? Trainer.IgnoreIndex : raw.Targets[b * 32 + t], batch.Targets[b * 32 + t]);
            }
        }
        Assert.Equal(31, seen.Count);   // every length in [1, T − 1] is drawn
    }

    [Fact]
    public void PrefixZeroIsCausalLm_DataAndModel()
    {
        var raw = RawBatch(3, 17, first: 30);
        var zero = new PrefixObjective(16, 0, 0).Apply(raw, 1, 0);
        Assert.Equal(raw.Targets, zero.Targets);
        Assert.Equal([0, 0, 0], zero.PrefixLengths!);

        var causal = new Decoder(new CpuBackend(), DecoderConfig.Micro with { VocabSize = 256 });
        var prefix = new Decoder(new CpuBackend(), DecoderConfig.Micro with { VocabSize = 256, Visibility = Visibility.Prefix });
        causal.InitializeWeights(4);
        prefix.InitializeWeights(4);
        var plain = new TokenBatch(raw.Inputs, raw.Targets, 3, 16);
        double a = Trainer.Evaluate(causal, [plain]).MeanLoss;
        Assert.Equal(a, Trainer.Evaluate(prefix, [zero]).MeanLoss);
        // and a real prefix changes the losses: the identity is not vacuous
        var some = plain with { PrefixLengths = [8, 8, 8] };
        Assert.NotEqual(a, Trainer.Evaluate(prefix, [some]).MeanLoss);
    }

    // ---- runs ------------------------------------------------------------------------------------------------------

    private static string Root(string name) => Path.Combine(Path.GetTempPath(), $"llm-objective-{name}-" + Guid.NewGuid().ToString("N")[..8]);

    [Theory]
    [InlineData("prefix")]
    [InlineData("span")]
    public void DecoderRunLearnsAndResumesBitForBit(string objective)
    {
        string root = Root(objective);
        try
        {
            var options = new TrainOptions
            {
                Preset = "micro", Objective = objective, Steps = 40, Batch = 4, Seq = 16, EvalEvery = 20, EvalBatches = 4, CheckpointEvery = 20, Seed = 5,
                Optimizer = new OptimizerOptions { WarmupSteps = 4, LearningRate = 1e-2f },
            };
            var whole = TrainingRun.Start(new CpuBackend(), options with { Out = Path.Combine(root, "whole") });
            Assert.Equal(Visibility.Prefix, ((Decoder)whole.Model).Config.Visibility);
            Assert.Equal(objective == "span" ? 356 : 256, whole.Model.VocabSize);
            whole.Run();
            var a = TrainingRun.ReadMetrics(Path.Combine(root, "whole"));
            double early = a.Take(3).Average(r => r.TrainLoss), late = a.TakeLast(5).Average(r => r.TrainLoss);
            Assert.True(late < early - 1.0, $"{objective}: the train loss fell only from {early:F3} to {late:F3} in 40 steps");

            var cts = new CancellationTokenSource();
            var first = TrainingRun.Start(new CpuBackend(), options with { Out = Path.Combine(root, "split") });
            first.Run(e => { if (e is CheckpointEvent { Step: 20 }) cts.Cancel(); }, cts.Token);
            var resumed = TrainingRun.Resume(new CpuBackend(), Path.Combine(root, "split"));
            Assert.Equal(objective, resumed.Options.Objective);
            resumed.Run();
            var b = TrainingRun.ReadMetrics(Path.Combine(root, "split"));
            Assert.Equal(a.Select(r => (r.Step, r.TrainLoss, r.ValidationLoss)), b.Select(r => (r.Step, r.TrainLoss, r.ValidationLoss)));
            Assert.True(whole.Model.Parameters.DownloadValues().AsSpan().SequenceEqual(resumed.Model.Parameters.DownloadValues()),
                "final weights differ between the resumed and the uninterrupted run");

            var e = Assert.Throws<ArgumentException>(() => TrainingRun.Resume(new CpuBackend(), Path.Combine(root, "split"),
                new ResumeOptions { Objective = objective == "span" ? "prefix" : "causal" }));
            Assert.StartsWith("--objective ", e.Message);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void CausalRunSavesItsObjectiveAndOlderStatesReadAsCausal()
    {
        Assert.Equal("causal", new TrainOptions().Objective);
        var node = System.Text.Json.Nodes.JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(new TrainOptions()))!.AsObject();
        Assert.Equal("causal", (string?)node["Objective"]);
        Assert.True(node.Remove("Objective"));   // a training state written before objectives existed
        string json = node.ToJsonString();
        Assert.Equal("causal", System.Text.Json.JsonSerializer.Deserialize<TrainOptions>(json)!.Objective);
    }

    [Theory]
    [InlineData("train --objective bogus", "--objective must be causal, prefix or span, got bogus")]
    [InlineData("train --objective", "--objective needs a value")]
    [InlineData("train --preset t5-tiny --objective prefix", "--objective prefix needs a decoder")]
    public void CliRefusesABadObjective(string commandLine, string mention)
    {
        AssertOneLineError(Run(commandLine.Split(' ')), mention);
    }

    // ---- the sample train prints ----------------------------------------------------------------------------------

    [Fact]
    public void DescribeShowsThePrefixSentinelsAndIgnoredTargets()
    {
        var tokenizer = new ByteTokenizer();
        var text = tokenizer.Encode("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.");
        TokenBatch Raw(int rawLength) => new(text[..(rawLength - 1)], text[1..rawLength], 1, rawLength - 1);

        var prefix = new PrefixObjective(64);
        var withPrefix = Enumerable.Range(0, 100).Select(d => prefix.Apply(Raw(65), 2, d)).First(b => b.PrefixLengths![0] >= 3);
        string p = prefix.Describe(withPrefix, tokenizer);
        Assert.StartsWith("objective prefix:", p);
        Assert.Contains(" ‖ ", p);
        Assert.Contains("[ignored ×", p);
        Assert.Contains("\"It is a truth", p);

        var glm = SpanCorruption.For(64, false, tokenizer);
        string g = glm.Describe(glm.Apply(Raw(glm.RawLength), 2, 0), tokenizer);
        Assert.Contains("<extra_id_0>", g);
        Assert.Contains("</s>", g);
        Assert.Contains(" ‖ ", g);
        Assert.Contains("[ignored ×", g);

        var t5 = SpanCorruption.For(64, true, tokenizer);
        string s = t5.Describe(t5.Apply(Raw(t5.RawLength), 2, 0), tokenizer);
        Assert.Contains("encoder  \"It is", s);
        Assert.Contains("decoder  \"<pad><extra_id_0>", s);
        Assert.Contains("target   \"<extra_id_0>", s);
        Assert.Equal(4, s.Split('\n').Length);
    }
}
