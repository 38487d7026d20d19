using Xunit;
using static Llm.Conformance.Training.CliRun;

namespace Llm.Conformance.Training;

/// <summary>`train` as a user meets it: values that cannot train, presets' defaults, resume, overwrite.</summary>
public sealed class TrainCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-train-cli-" + Guid.NewGuid().ToString("N")[..8]);
    public TrainCliTests() => Directory.CreateDirectory(_dir);
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private string[] Micro(string run, int steps = 2) =>
        ["train", "--backend", "cpu", "--preset", "micro", "--steps", $"{steps}", "--batch", "2", "--eval-every", "2", "--eval-batches", "1",
         "--checkpoint-every", "2", "--out", Path.Combine(_dir, run)];

    [Fact]
    public void The_micro_preset_runs_with_its_own_defaults()
    {
        // no --seq: micro's context is 16, so the default of 64 would not fit it
        var r = Run(Micro("micro"));
        Assert.True(r.Code == 0, r.Err + r.Out);
        Assert.Contains("B=2 T=16", r.Out);
        Assert.True(File.Exists(Path.Combine(_dir, "micro", "step_000002", "model.safetensors")));
    }

    /// <summary>A tiny LLaMA (GQA, SwiGLU, RoPE, RMSNorm) from a Hugging Face config.json: it trains, and its checkpoint
    /// carries the family's config (the vocabulary the byte tokenizer's) and names.</summary>
    [Fact]
    public void A_hugging_face_config_trains_instead_of_a_preset()
    {
        string config = Path.Combine(_dir, "tiny-llama", "config.json");
        Directory.CreateDirectory(Path.GetDirectoryName(config)!);
        File.WriteAllText(config, """
            {"model_type": "llama", "vocab_size": 32000, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 16, "rms_norm_eps": 1e-6,
             "hidden_act": "silu", "rope_scaling": null, "tie_word_embeddings": false}
            """);
        string run = Path.Combine(_dir, "llama-run");
        var r = Run("train", "--backend", "cpu", "--config", config, "--steps", "2", "--batch", "2", "--eval-every", "2",
            "--eval-batches", "1", "--checkpoint-every", "2", "--out", run);
        Assert.True(r.Code == 0, r.Err + r.Out);
        Assert.Contains("B=2 T=16", r.Out);   // the config's max_position_embeddings bounds the default --seq
        string step = Path.Combine(run, "step_000002");
        string saved = File.ReadAllText(Path.Combine(step, "config.json"));
        Assert.Contains("\"model_type\": \"llama\"", saved);
        Assert.Contains("\"vocab_size\": 256", saved);
        Assert.Contains("\"num_key_value_heads\": 2", saved);
        using var weights = Llm.IO.SafeTensorsFile.Read(Path.Combine(step, "model.safetensors"));
        Assert.Contains("model.layers.1.self_attn.k_proj.weight", weights.Names);

        AssertOneLineError(Run("train", "--backend", "cpu", "--config", config, "--preset", "micro", "--out", run + "2"), "--config and --preset");
        File.WriteAllText(config, """{"model_type": "llama", "vocab_size": 256, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "rope_scaling": {"type": "linear", "factor": 2}}""");
        AssertOneLineError(Run("train", "--backend", "cpu", "--config", config, "--out", run + "3"), "rope_scaling");
    }

    [Theory]
    [InlineData("--weight-decay", "NaN")]
    [InlineData("--weight-decay", "-0.1")]
    [InlineData("--grad-clip", "NaN")]
    [InlineData("--grad-clip", "-1")]
    [InlineData("--grad-clip", "Infinity")]
    [InlineData("--warmup", "-1")]
    [InlineData("--lr", "0")]
    [InlineData("--lr", "NaN")]
    [InlineData("--lr", "-0.001")]
    [InlineData("--accumulate", "0")]
    [InlineData("--keep-last", "-1")]
    [InlineData("--max-skipped", "0")]
    [InlineData("--eval-every", "0")]
    [InlineData("--checkpoint-every", "0")]
    [InlineData("--seq", "17")]
    public void Values_that_cannot_train_are_refused_before_anything_is_written(string option, string value)
    {
        var r = Run([.. Micro("bad"), option, value]);
        AssertOneLineError(r, option);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")), "the run folder was created before the options were checked");
    }

    [Fact]
    public void Resume_refuses_contradictions_says_changes_and_stops_at_the_end()
    {
        string run = Path.Combine(_dir, "r");
        Assert.Equal(0, Run(Micro("r")).Code);

        AssertOneLineError(Run("train", "--backend", "cpu", "--resume", run, "--batch", "4"), "--batch 4");
        AssertOneLineError(Run("train", "--backend", "cpu", "--resume", run, "--lr", "0.1"), "--lr 0.1");
        AssertOneLineError(Run("train", "--backend", "cpu", "--resume", run, "--overwrite"), "--overwrite");

        var done = Run("train", "--backend", "cpu", "--resume", run);
        Assert.True(done.Code == 0, done.Err);
        Assert.Contains("nothing to do", done.Out);
        Assert.DoesNotContain("NaN", done.Out);

        var more = Run("train", "--backend", "cpu", "--resume", run, "--steps", "4", "--batch", "2");  // the same batch is no contradiction
        Assert.True(more.Code == 0, more.Err + more.Out);
        Assert.Contains("--steps 4 (the run had 2)", more.Out);
        Assert.Equal("step_000004", File.ReadAllText(Path.Combine(run, "latest")).Trim());
    }

    [Fact]
    public void A_fresh_run_does_not_overwrite_another_unless_asked()
    {
        Assert.Equal(0, Run(Micro("o")).Code);
        var again = Run(Micro("o"));
        AssertOneLineError(again, "--overwrite");
        Assert.Contains("--resume", again.Err);
        var forced = Run([.. Micro("o"), "--overwrite"]);
        Assert.True(forced.Code == 0, forced.Err);
    }

    [Fact]
    public void Training_text_that_is_not_UTF8_is_converted_with_a_warning()
    {
        string data = Path.Combine(_dir, "latin1.txt");
        var bytes = System.Text.Encoding.UTF8.GetBytes(Llm.Text.Corpus.PrideAndPrejudice[..3000]).ToList();
        bytes.InsertRange(100, new byte[] { 0xE9, 0xFF });   // Latin-1 é and a byte no UTF-8 has
        File.WriteAllBytes(data, [.. bytes]);
        var r = Run([.. Micro("latin1"), "--data", data]);
        Assert.True(r.Code == 0, r.Err + r.Out);
        Assert.Contains("warning: ", r.Err);
        Assert.Contains("latin1.txt", r.Err);
        Assert.Contains("2 bytes", r.Err);
    }
}
