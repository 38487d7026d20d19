using System.CommandLine;
using System.Text.Json;
using Llm.IO;
using Llm.Text;
using Llm.Training;
using Llm.Training.Objectives;

namespace Llm.Tools;

/// <summary>`eval`: mean cross-entropy (nats/token) and perplexity of a checkpoint on a text, or on the held-out tail
/// of it that `train` validated on.</summary>
internal static class EvalCommand
{
    /// <param name="stdout">The result (and, without --json, the backend line).</param>
    /// <param name="stderr">Warnings about the text, such as bytes that are not UTF-8.</param>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "a run folder (its latest checkpoint), a step folder, or a Hugging Face folder (GPT-2, LLaMA/Mistral, BLOOM, GPT-NeoX)", Required = true };
        var data = Cli.Opt<string?>("--data", "UTF-8 text file to score (default: the embedded Pride and Prejudice)");
        var heldOut = Cli.Opt("--held-out", $"score only the last {TokenDataset.DefaultValidationFraction:P0} of the tokens, the tail train holds out for validation", false);
        var batch = Cli.Opt("--batch", "B sequences per forward pass", 8).AtLeast(1);
        var seq = Cli.Opt<int?>("--seq", "T tokens per sequence (default: the model's context length)").AtLeast(1);
        var tokenizerOption = Cli.Opt<string?>("--tokenizer", "byte, gpt2, a folder, or a tokenizer.model / tokenizer.json file (default: the model folder's tokenizer.model, else tokenizer.json, else config.json's llm_tokenizer, else gpt2 for a GPT-2 folder)");
        var json = Cli.Opt("--json", "print one JSON object: loss, perplexity, tokens, bits_per_byte", false);
        var objectiveOption = Cli.Opt<string?>("--objective", $"what is scored: {string.Join("|", Objective.Names)} (default: causal for a decoder, span for an encoder-decoder); prefix and span draw as train's validation does (--seed)");
        var seed = Cli.Opt("--seed", "the seed of the prefix lengths and corrupted spans (prefix, span)", 1337UL);
        var cmd = new Command("eval", "Score a text: mean cross-entropy in nats per token, and perplexity.") { checkpoint, tokenizerOption, data, heldOut, batch, seq, objectiveOption, seed, json };
        cmd.SetAction(p =>
        {
            string folder = Checkpoint.ResolveModelFolder(p.GetValue(checkpoint)!);
            string? path = p.GetValue(data);
            string text = Corpus.Load(path, warning => stderr.WriteLine($"warning: {warning}"));  // a bad file fails before a device opens
            bool asJson = p.GetValue(json);
            using var backend = Cli.CreateBackend(p, asJson ? TextWriter.Null : stdout);
            var (model, tokenizerName) = Models.LanguageModels.Load(folder, backend);
            var tokenizer = Tokenizers.ForModel(p.GetValue(tokenizerOption), folder, tokenizerName, model.VocabSize);
            int B = p.GetValue(batch);
            int T = p.GetValue(seq) ?? model.ContextLength;
            if (T > model.ContextLength)
                throw new ArgumentException($"--seq {T} exceeds the model's context length, {model.ContextLength}");
            bool encoderDecoder = model is Models.EncoderDecoder;
            var objective = Objective.Create(p.GetValue(objectiveOption) ?? (encoderDecoder ? "span" : Objective.Default), T, encoderDecoder, tokenizer);
            if (objective.Sentinels > 0 && model.VocabSize != tokenizer.VocabSize + objective.Sentinels)
                throw new ArgumentException($"--objective {objective.Name} puts {objective.Sentinels} sentinels above the {tokenizer.VocabSize} ids of tokenizer {tokenizer.Name}, " +
                                            $"but the model's vocabulary has {model.VocabSize} ids: it was not trained with this objective and tokenizer");
            string name = path ?? "Pride and Prejudice (embedded)";
            int[] tokens = tokenizer.Encode(text);
            long bytes = System.Text.Encoding.UTF8.GetByteCount(text);
            if (p.GetValue(heldOut))
            {
                tokens = HeldOutTail(tokens);
                bytes = System.Text.Encoding.UTF8.GetByteCount(tokenizer.Decode(tokens));
                name += ", held-out tail";
            }
            if (tokens.Length < 2) throw new ArgumentException($"{name}: needs at least 2 tokens to score, has {tokens.Length}");
            var (loss, count) = objective is CausalObjective
                ? Trainer.Evaluate(model, Windows(tokens, B, T), B, T)
                : Trainer.Evaluate(model, Rows(tokens, B, objective, p.GetValue(seed)));
            double perplexity = Math.Exp(loss);
            double bitsPerByte = loss * count / Math.Log(2) / bytes;
            if (asJson)
                stdout.WriteLine(JsonSerializer.Serialize(new { loss, perplexity, tokens = count, bits_per_byte = objective is CausalObjective ? bitsPerByte : (double?)null, file = path, held_out = p.GetValue(heldOut), objective = objective.Name, backend = backend.Name }));
            else
                stdout.WriteLine(objective is CausalObjective
                    ? $"{name}: loss {loss:F4} nats/token, perplexity {perplexity:F3}, {count:N0} tokens, {bitsPerByte:F3} bits/byte"
                    : $"{name}, objective {objective.Name} at T = {T}: loss {loss:F4} nats/target, perplexity {perplexity:F3}, {count:N0} scored targets");
            return 0;
        });
        return cmd;
    }

    /// <summary>The validation split of `train`, cut where <see cref="TokenDataset"/> cuts it, so eval scores exactly
    /// the tokens train held out.</summary>
    internal static int[] HeldOutTail(int[] tokens) =>
        tokens[TokenDataset.TrainCountOf(tokens.Length, TokenDataset.DefaultValidationFraction)..];

    /// <summary>Non-overlapping rows of the objective's R raw tokens, B a batch (the last batch smaller; an incomplete
    /// last row left out), each batch transformed by the objective with validation draw i, as train's validation is.</summary>
    private static IEnumerable<TokenBatch> Rows(int[] tokens, int B, Objective objective, ulong seed)
    {
        int R = objective.RawLength, rows = tokens.Length / R;
        if (rows == 0) throw new ArgumentException($"objective {objective.Name} at --seq {objective.Seq} reads rows of {R} tokens; the text has {tokens.Length}");
        for (int r0 = 0, draw = 0; r0 < rows; r0 += B, draw++)
        {
            int b = Math.Min(B, rows - r0), t = R - 1;
            var inputs = new int[b * t];
            var targets = new int[b * t];
            for (int i = 0; i < b; i++)
            {
                tokens.AsSpan((r0 + i) * R, t).CopyTo(inputs.AsSpan(i * t));
                tokens.AsSpan((r0 + i) * R + 1, t).CopyTo(targets.AsSpan(i * t));
            }
            yield return objective.Apply(new TokenBatch(inputs, targets, b, t), seed, Objective.ValidationDraw(draw));
        }
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
