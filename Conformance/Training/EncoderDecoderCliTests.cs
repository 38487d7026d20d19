using Xunit;
using static Llm.Conformance.Training.CliRun;

namespace Llm.Conformance.Training;

/// <summary>An encoder-decoder through the CLI as a user meets it: `train --preset t5-micro` (span corruption by default)
/// writes a T5 checkpoint in Hugging Face's layout, `eval` scores it with the span objective, `sample` reads a prompt as
/// its source and writes the decoder's output, and `train --resume` continues it.</summary>
public sealed class EncoderDecoderCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-t5-cli-" + Guid.NewGuid().ToString("N")[..8]);
    public EncoderDecoderCliTests() => Directory.CreateDirectory(_dir);
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    [Fact]
    public void A_t5_run_trains_saves_evaluates_samples_and_resumes()
    {
        string run = Path.Combine(_dir, "t5");
        var r = Run("train", "--backend", "cpu", "--preset", "t5-micro", "--steps", "2", "--batch", "2", "--eval-every", "2",
            "--eval-batches", "1", "--checkpoint-every", "2", "--out", run);
        Assert.True(r.Code == 0, r.Err + r.Out);
        Assert.Contains("objective span", r.Out);
        Assert.Contains("<extra_id_0>", r.Out);                  // the sample of what the model sees
        string step = Path.Combine(run, "step_000002");
        string config = File.ReadAllText(Path.Combine(step, "config.json"));
        Assert.Contains("\"model_type\": \"t5\"", config);
        Assert.Contains("\"vocab_size\": 356", config);           // 256 bytes + 100 sentinels
        using (var weights = Llm.IO.SafeTensorsFile.Read(Path.Combine(step, "model.safetensors")))
        {
            Assert.Contains("shared.weight", weights.Names);
            Assert.Contains("decoder.block.1.layer.1.EncDecAttention.k.weight", weights.Names);
            Assert.Contains("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", weights.Names);
        }

        var eval = Run("eval", "--backend", "cpu", "--checkpoint", run, "--held-out", "--json");
        Assert.True(eval.Code == 0, eval.Err + eval.Out);
        using (var json = System.Text.Json.JsonDocument.Parse(eval.Out))
        {
            Assert.Equal("span", json.RootElement.GetProperty("objective").GetString());
            double loss = json.RootElement.GetProperty("loss").GetDouble();
            Assert.True(double.IsFinite(loss) && loss > 0, $"eval loss {loss}");
        }
        AssertOneLineError(Run("eval", "--backend", "cpu", "--checkpoint", run, "--objective", "causal"), "needs a decoder");

        var sample = Run("sample", "--backend", "cpu", "--checkpoint", run, "--prompt", "a truth <extra_id_0> known", "--tokens", "5", "--temperature", "0");
        Assert.True(sample.Code == 0, sample.Err + sample.Out);
        Assert.StartsWith("a truth <extra_id_0> known", sample.Out);    // 14 bytes + a sentinel + EOS: within t5-micro's 16
        Assert.Contains("source", sample.Err);                  // "... (source N tokens, encoded once; decoder KV cache ...)"

        var tooLong = Run("sample", "--backend", "cpu", "--checkpoint", run, "--prompt", "It is a truth universally acknowledged");
        Assert.True(tooLong.Code != 0 && tooLong.Err.Contains("error: --prompt is 39 tokens with its EOS, more than the encoder's context length 16"), tooLong.Err);

        var resumed = Run("train", "--backend", "cpu", "--resume", run, "--steps", "3");
        Assert.True(resumed.Code == 0, resumed.Err + resumed.Out);
        Assert.True(File.Exists(Path.Combine(run, "step_000003", "model.safetensors")));
        AssertOneLineError(Run("train", "--backend", "cpu", "--preset", "t5-micro", "--objective", "prefix", "--out", Path.Combine(_dir, "bad")), "--objective prefix");
    
    }

    /// <summary>T5's own config.json (the torch fixture's: d_model 16, 3 heads of d_kv 8, 2 + 3 layers) trains with the
    /// span objective, its vocabulary the byte tokenizer's + 100 sentinels, and its checkpoint keeps the config's shape.</summary>
    [Fact]
    public void A_t5_config_json_trains_instead_of_a_preset()
    {
        string config = Path.Combine(AppContext.BaseDirectory, "Fixtures", "hf", "t5-relu", "config.json");
        string run = Path.Combine(_dir, "t5-config");
        var r = Run("train", "--backend", "cpu", "--config", config, "--steps", "2", "--batch", "2", "--seq", "24", "--eval-every", "2",
            "--eval-batches", "1", "--checkpoint-every", "2", "--out", run);
        Assert.True(r.Code == 0, r.Err + r.Out);
        Assert.Contains("objective span", r.Out);
        var saved = Llm.IO.T5HfConfig.Load(Path.Combine(run, "step_000002", "config.json")).Model;
        Assert.Equal((356, 16, 3, 8, 2, 3, 8, 20), (saved.VocabSize, saved.Channels, saved.Heads, saved.HeadSize, saved.EncoderLayers,
            saved.DecoderLayers, saved.RelativeBuckets, saved.RelativeMaxDistance));
        AssertOneLineError(Run("train", "--backend", "cpu", "--config", config, "--objective", "causal", "--out", run + "2"), "--objective causal");
    }
}
