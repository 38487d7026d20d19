using System.Text;
using System.Text.Json;
using Llm.Cpu;
using Llm.Text;
using Llm.Tools;
using Llm.Training;
using Xunit;
using static Llm.Conformance.Training.CliRun;

namespace Llm.Conformance.Training;

/// <summary>One micro checkpoint (untrained, step 0) on a 330-byte text, shared by the tests that need a model.</summary>
public sealed class MicroCheckpoint : IDisposable
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "llm-cli-input-" + Guid.NewGuid().ToString("N")[..8]);
    public string Run => Path.Combine(Dir, "run");
    public string Text => Path.Combine(Dir, "text.txt");
    /// <summary>TrainingRun.ValidationLoss of the checkpoint's model: the loss train reports on the held-out tail.</summary>
    public double ValidationLoss { get; }
    public int ValidationCount { get; }

    public MicroCheckpoint()
    {
        Directory.CreateDirectory(Dir);
        // 330 bytes: the held-out tail is round(33.0) = 33 tokens, two windows of 16 + 1 with B=1, T=16, so train's
        // validation batches cover the tail exactly as eval's windows do
        string sentence = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. ";
        File.WriteAllText(Text, string.Concat(Enumerable.Repeat(sentence, 3))[..330]);
        var run = TrainingRun.Start(new CpuBackend(), new TrainOptions
        {
            Preset = "micro", DataPath = Text, Steps = 1, Batch = 1, Seq = 16, EvalBatches = 10, Out = Run,
        });
        ValidationCount = run.Data.ValidationCount;
        ValidationLoss = run.ValidationLoss();
        run.SaveCheckpoint();
    }

    public void Dispose() { if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true); }
}

/// <summary>Bad command lines end as one line naming what is wrong; sample names its backend on stderr; eval scores
/// the held-out tail and warns about bytes that are not UTF-8.</summary>
public sealed class CliInputTests(MicroCheckpoint checkpoint) : IClassFixture<MicroCheckpoint>
{
    /// <summary>{ck}: a checkpoint; {dir}: a directory; {text}: a text file.</summary>
    private string[] Expand(string commandLine) => commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries)
        .Select(a => a.Replace("{ck}", checkpoint.Run).Replace("{dir}", checkpoint.Dir).Replace("{text}", checkpoint.Text).Replace("''", ""))
        .ToArray();

    [Theory]
    // no command, or an unknown one
    [InlineData("", "no command given")]
    [InlineData("foo", "unknown command 'foo'")]
    [InlineData("--verbose", "no command given")]
    [InlineData("--backend cpu trian", "unknown command 'trian'")]
    // train: only what is parse-level or handled today (its value checks belong to TrainOptions)
    [InlineData("train --steps abc", "--steps: 'abc' is not an integer")]
    [InlineData("train --steps ''", "--steps: '' is not an integer")]
    [InlineData("train --steps", "--steps needs a value")]
    [InlineData("train --steps 99999999999", "--steps")]
    [InlineData("train --lr fast", "--lr: 'fast' is not a number")]
    [InlineData("train --seed -1", "--seed: '-1'")]
    [InlineData("train --steps 1 --steps 2", "--steps")]
    [InlineData("train --no-such-option 1", "unknown option '--no-such-option'")]
    [InlineData("train extra", "'extra'")]
    [InlineData("train --backend metal", "metal")]
    [InlineData("train --device -1", "--device")]
    [InlineData("train --data /nonexistent/corpus.txt", "/nonexistent/corpus.txt")]
    [InlineData("train --data {dir}", "is a directory, not a text file")]
    // sample
    [InlineData("sample", "--checkpoint is required")]
    [InlineData("sample --checkpoint /nonexistent/run", "/nonexistent/run")]
    [InlineData("sample --checkpoint {ck} --tokens -1", "--tokens")]
    [InlineData("sample --checkpoint {ck} --tokens many", "--tokens: 'many' is not an integer")]
    [InlineData("sample --checkpoint {ck} --temperature nan", "--temperature")]
    [InlineData("sample --checkpoint {ck} --temperature -1", "--temperature")]
    [InlineData("sample --checkpoint {ck} --temperature warm", "--temperature: 'warm' is not a number")]
    [InlineData("sample --checkpoint {ck} --top-p 2", "--top-p")]
    [InlineData("sample --checkpoint {ck} --top-p 0", "--top-p")]
    [InlineData("sample --checkpoint {ck} --top-k -3", "--top-k")]
    [InlineData("sample --checkpoint {ck} --repetition-penalty 0", "--repetition-penalty")]
    [InlineData("sample --checkpoint {ck} --seed -5", "--seed")]
    [InlineData("sample --checkpoint {ck} --device -1", "--device")]
    // eval
    [InlineData("eval --checkpoint {ck} --batch 0", "--batch must be ≥ 1, got 0")]
    [InlineData("eval --checkpoint {ck} --seq 0", "--seq must be ≥ 1, got 0")]
    [InlineData("eval --checkpoint {ck} --seq 100000", "--seq 100000")]
    [InlineData("eval --checkpoint {ck} --data {dir}", "is a directory, not a text file")]
    [InlineData("eval --checkpoint {ck} --data /nonexistent/text.txt", "/nonexistent/text.txt")]
    [InlineData("eval --checkpoint {ck} --json maybe", "--json: 'maybe' is not true or false")]
    [InlineData("eval --checkpoint", "--checkpoint needs a value")]
    [InlineData("eval --checkpoint {ck} --held-out=perhaps", "--held-out")]
    // bench: everything refused before a device opens or a measurement starts
    [InlineData("bench --batch 0", "--batch must be ≥ 1, got 0")]
    [InlineData("bench --steps 0", "--steps must be ≥ 1, got 0")]
    [InlineData("bench --matmul-size 0", "--matmul-size")]
    [InlineData("bench --seq -4", "--seq must be ≥ 1, got -4")]
    [InlineData("bench --seq 5000", "--seq 5000")]
    [InlineData("bench --preset huge", "huge")]
    [InlineData("bench --device -1", "--device")]
    [InlineData("bench --skip-naive=maybe", "--skip-naive")]
    [InlineData("bench --batch x", "--batch: 'x' is not an integer")]
    public void BadInvocationsEndAsOneLineInTheCliOwnWords(string commandLine, string mention)
    {
        AssertOneLineError(Run(Expand(commandLine)), mention);
    }

    [Fact]
    public void UnknownCommandListsTheCommands()
    {
        var r = Run("foo");
        Assert.Equal("error: unknown command 'foo'; the commands are train, sample, eval, bench, conformance", AssertOneLineError(r, "foo"));
    }

    [Fact]
    public void ParseErrorsSayWhatTheValueIsNot()
    {
        Assert.Equal("error: --steps: 'abc' is not an integer", AssertOneLineError(Run("train", "--steps", "abc"), "--steps"));
        Assert.Equal("error: --top-p: 'high' is not a number", AssertOneLineError(Run("sample", "--checkpoint", "x", "--top-p", "high"), "--top-p"));
        Assert.Equal("error: --seed: '-1' is below the smallest accepted value, 0", AssertOneLineError(Run("sample", "--checkpoint", "x", "--seed", "-1"), "--seed"));
        Assert.Equal("error: --json: 'maybe' is not true or false (the switch alone means true)", AssertOneLineError(Run("eval", "--checkpoint", "x", "--json", "maybe"), "--json"));
        Assert.Equal("error: unknown option '--stpes' for train (see llm train --help)", AssertOneLineError(Run("train", "--stpes", "3"), "--stpes"));
    }

    [Fact]
    public void DeviceIndexBeyondTheDevicesSaysHowManyThereAre()
    {
        var r = Run("bench", "--backend", "vulkan", "--device", "99");
        string line = AssertOneLineError(r, "--device 99");
        int count;
        try { count = Llm.Vulkan.VulkanBackend.ListDevices().Count; }
        catch (Exception e) when (e is Llm.Vulkan.VulkanException or DllNotFoundException) { count = 0; }  // as the CLI counts them
        Assert.Contains(count switch { 0 => "no Vulkan device is present", 1 => "there is only 1 Vulkan device", _ => $"there are {count} Vulkan devices" }, line);
    }

    [Fact]
    public void SamplePrintsItsBackendOnStderrAndOnlyTheTextOnStdout()
    {
        var r = Run("sample", "--backend", "cpu", "--checkpoint", checkpoint.Run, "--prompt", "It is", "--tokens", "3", "--temperature", "0");
        Assert.True(r.Code == 0, r.Err);
        var err = Lines(r.Err).ToArray();
        Assert.Equal(2, err.Length);
        Assert.Equal("backend: cpu", err[0].Split(" (")[0]);
        Assert.Matches(@"^3 tokens in [0-9.]+ s: [0-9.]+ tokens/s \(prompt \d+ tokens, KV cache\)$", err[1]);
        Assert.StartsWith("It is", r.Out);
        Assert.DoesNotContain("backend", r.Out);
    }

    [Fact]
    public void EvalHeldOutScoresExactlyTheValidationTokensWithTrainsLoss()
    {
        var r = Run("eval", "--backend", "cpu", "--checkpoint", checkpoint.Run, "--data", checkpoint.Text, "--held-out", "--batch", "1", "--seq", "16", "--json");
        Assert.True(r.Code == 0, r.Err);
        var json = JsonDocument.Parse(r.Out).RootElement;
        Assert.Equal(33, checkpoint.ValidationCount);
        Assert.Equal(checkpoint.ValidationCount - 1, json.GetProperty("tokens").GetInt64());  // every token after the first is a target
        Assert.Equal(checkpoint.ValidationLoss, json.GetProperty("loss").GetDouble(), 12);
        Assert.True(json.GetProperty("held_out").GetBoolean());

        var all = JsonDocument.Parse(Run("eval", "--backend", "cpu", "--checkpoint", checkpoint.Run, "--data", checkpoint.Text, "--json").Out).RootElement;
        Assert.Equal(329, all.GetProperty("tokens").GetInt64());
    }

    [Fact]
    public void EvalWithoutDataScoresTheHeldOutTailOfTheEmbeddedNovel()
    {
        var r = Run("eval", "--backend", "cpu", "--checkpoint", checkpoint.Run, "--held-out", "--batch", "64", "--json");
        Assert.True(r.Code == 0, r.Err);
        int[] tokens = new ByteTokenizer().Encode(Corpus.PrideAndPrejudice);
        var split = new TokenDataset(tokens, 1, 1);  // where train cuts the same text
        var json = JsonDocument.Parse(r.Out).RootElement;
        Assert.Equal(split.ValidationCount - 1, json.GetProperty("tokens").GetInt64());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("file").ValueKind);
        Assert.Equal(split.Validation.ToArray(), EvalCommand.HeldOutTail(tokens));
    }

    [Fact]
    public void EvalWarnsAboutBytesThatAreNotUtf8()
    {
        string path = Path.Combine(checkpoint.Dir, "latin1.txt");
        // "café" in Latin-1 (one bad byte), then a lone continuation byte and a truncated 3-byte sequence (2 bytes)
        byte[] text = [.. Encoding.ASCII.GetBytes("caf"), 0xE9, .. Encoding.ASCII.GetBytes(" au lait, "), 0x80, .. Encoding.ASCII.GetBytes(" and "), 0xE2, 0x82];
        File.WriteAllBytes(path, text);
        var r = Run("eval", "--backend", "cpu", "--checkpoint", checkpoint.Run, "--data", path, "--json");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal($"warning: {path}: 4 bytes are not valid UTF-8 and were replaced by U+FFFD", Assert.Single(Lines(r.Err)));
        JsonDocument.Parse(r.Out);  // stdout still carries only the JSON
    }
}
