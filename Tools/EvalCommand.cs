using System.CommandLine;
using System.Text.Json;
using Llm.IO;
using Llm.Text;
using Llm.Training;

namespace Llm.Tools;

/// <summary>`eval`: mean cross-entropy (nats/token) and perplexity of a checkpoint on a text file.</summary>
internal static class EvalCommand
{
    public static Command Create(TextWriter stdout)
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "a run folder (its latest checkpoint), a step folder, or a Hugging Face GPT-2 folder", Required = true };
        var data = new Option<string>("--data") { Description = "UTF-8 text file to score", Required = true };
        var batch = Cli.Opt("--batch", "B sequences per forward pass", 8);
        var seq = Cli.Opt<int?>("--seq", "T tokens per sequence (default: the model's context length)");
        var json = Cli.Opt("--json", "print one JSON object: loss, perplexity, tokens, bits_per_byte", false);
        var cmd = new Command("eval", "Score a text file: mean cross-entropy in nats per token, and perplexity.") { checkpoint, data, batch, seq, json };
        cmd.SetAction(p =>
        {
            string folder = Checkpoint.ResolveModelFolder(p.GetValue(checkpoint)!);
            bool asJson = p.GetValue(json);
            using var backend = Cli.CreateBackend(p, asJson ? TextWriter.Null : stdout);
            var (model, tokenizerName) = Models.Gpt2.Load(folder, backend);
            var tokenizer = Tokenizers.Create(tokenizerName);
            string path = p.GetValue(data)!;
            string text = Corpus.Load(path);
            int B = p.GetValue(batch);
            int T = p.GetValue(seq) ?? model.Config.ContextLength;
            if (B < 1 || T < 1 || T > model.Config.ContextLength)
                throw new ArgumentException($"--batch must be ≥ 1 and --seq in [1, {model.Config.ContextLength}], got B={B}, T={T}");
            int[] tokens = tokenizer.Encode(text);
            if (tokens.Length < 2) throw new ArgumentException($"{path}: needs at least 2 tokens to score, has {tokens.Length}");
            var (loss, count) = Trainer.Evaluate(model, Windows(tokens, B, T), B, T);
            double perplexity = Math.Exp(loss);
            double bitsPerByte = loss * count / Math.Log(2) / System.Text.Encoding.UTF8.GetByteCount(text);
            if (asJson)
                stdout.WriteLine(JsonSerializer.Serialize(new { loss, perplexity, tokens = count, bits_per_byte = bitsPerByte, file = path, backend = backend.Name }));
            else
                stdout.WriteLine($"{path}: loss {loss:F4} nats/token, perplexity {perplexity:F3}, {count:N0} tokens, {bitsPerByte:F3} bits/byte");
            return 0;
        });
        return cmd;
    }

    /// <summary>Every token after the first is scored exactly once: non-overlapping windows of T+1 tokens (stride T);
    /// the last batch is padded with targets that are ignored.</summary>
    private static IEnumerable<(int[] Inputs, int[] Targets)> Windows(int[] tokens, int B, int T)
    {
        int windows = (tokens.Length - 1 + T - 1) / T;
        for (int w0 = 0; w0 < windows; w0 += B)
        {
            var inputs = new int[B * T];
            var targets = new int[B * T];
            Array.Fill(targets, Trainer.IgnoreIndex);
            for (int b = 0; b < B && w0 + b < windows; b++)
                for (int t = 0; t < T; t++)
                {
                    int i = (w0 + b) * T + t;
                    if (i + 1 >= tokens.Length) break;
                    inputs[b * T + t] = tokens[i];
                    targets[b * T + t] = tokens[i + 1];
                }
            yield return (inputs, targets);
        }
    }
}
