using System.CommandLine;
using Llm.Inference;
using Llm.IO;
using Llm.Text;

namespace Llm.Tools;

/// <summary>`sample`: continue a prompt with a trained model (greedy, temperature, top-k, top-p; seeded).</summary>
internal static class SampleCommand
{
    /// <param name="stdout">Carries only the prompt and its continuation, so the text can be piped on.</param>
    /// <param name="stderr">The backend line (and with --verbose, the devices).</param>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var d = new SamplingOptions();
        var checkpoint = new Option<string>("--checkpoint") { Description = "a run folder (its latest checkpoint), a step folder, or a Hugging Face folder (GPT-2, LLaMA/Mistral, BLOOM, GPT-NeoX)", Required = true };
        var prompt = Cli.Opt("--prompt", "text to continue", "");
        // the ranges of SamplingOptions.Validate, checked here too so the message names the option as typed
        var tokens = Cli.Opt("--tokens", "new tokens to generate", 200).AtLeast(0);
        var temperature = Cli.Opt("--temperature", "softmax temperature; 0 = greedy", 0.8f)
            .Must(t => t >= 0 && float.IsFinite(t), "a finite number ≥ 0 (0 = greedy)");
        var topK = Cli.Opt("--top-k", "sample among the k most likely tokens (0: off)", d.TopK).AtLeast(0);
        var topP = Cli.Opt("--top-p", "nucleus sampling: the smallest set with probability ≥ p (1: off)", d.TopP)
            .Must(v => v > 0 && v <= 1, "in (0, 1] (1 = off)");
        var penalty = Cli.Opt("--repetition-penalty", "CTRL repetition penalty (1: off)", d.RepetitionPenalty)
            .Must(r => r > 0 && float.IsFinite(r), "a finite number > 0 (1 = off)");
        var tokenizerOption = Cli.Opt<string?>("--tokenizer", "byte, gpt2, a folder, or a tokenizer.model / tokenizer.json file (default: the model folder's tokenizer.model, else tokenizer.json, else config.json's llm_tokenizer, else gpt2 for a GPT-2 folder)");
        var seed = Cli.Opt("--seed", "sampling seed", d.Seed);
        var cmd = new Command("sample", "Generate text from a checkpoint.") { checkpoint, tokenizerOption, prompt, tokens, temperature, topK, topP, penalty, seed };
        cmd.SetAction(p =>
        {
            var options = new SamplingOptions
            {
                Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP),
                RepetitionPenalty = p.GetValue(penalty), Seed = p.GetValue(seed),
            }.Validate();
            int n = p.GetValue(tokens);
            string folder = Checkpoint.ResolveModelFolder(p.GetValue(checkpoint)!);  // a missing folder fails before any device opens
            // as every command, sample names its backend; on stderr, since stdout carries only the text
            using var backend = Cli.CreateBackend(p, stderr);
            var (loaded, tokenizerName) = Models.LanguageModels.Load(folder, backend);
            var tokenizer = Tokenizers.ForModel(p.GetValue(tokenizerOption), folder, tokenizerName, loaded.VocabSize);
            string text = p.GetValue(prompt)!;
            if (loaded is Models.EncoderDecoder encoderDecoder)
                return Translate(encoderDecoder, tokenizer, text, n, new Sampler(options), stdout, stderr);
            var model = (Models.Decoder)loaded;
            int[] ids = tokenizer.Encode(text);
            if (ids.Length == 0) ids = [tokenizer.BeginOfText ?? tokenizer.EndOfText ?? '\n'];  // an empty prompt starts a new document
            stdout.Write(text);
            // Printed as the growth of the decoded whole, not token by token: SentencePiece decodes a piece's leading
            // "▁" as a space only after other text, and the bytes of one UTF-8 character may arrive in several tokens
            // (the text then ends in U+FFFD until the character is complete).
            var all = new List<int>(ids);
            string shown = tokenizer.Decode(ids);
            int pendingFrom = all.Count;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int generated = 0;
            foreach (int id in Generator.Generate(model, ids, n, new Sampler(options)))   // with the KV cache
            {
                generated++;
                all.Add(id);
                string whole = tokenizer.Decode(all.ToArray());
                if (whole.EndsWith('\uFFFD')) continue;
                stdout.Write(whole.StartsWith(shown, StringComparison.Ordinal) ? whole[shown.Length..] : tokenizer.Decode(all.ToArray().AsSpan(pendingFrom)));
                shown = whole;
                pendingFrom = all.Count;
            }
            if (pendingFrom < all.Count) stdout.Write(tokenizer.Decode(all.ToArray().AsSpan(pendingFrom)));
            stdout.WriteLine();
            double seconds = clock.Elapsed.TotalSeconds;
            stderr.WriteLine($"{generated} tokens in {seconds:F2} s: {generated / Math.Max(seconds, 1e-9):F1} tokens/s (prompt {ids.Length} tokens, KV cache)");
            return 0;
        });
        return cmd;
    }

    /// <summary>An encoder-decoder reads the prompt as its source (T5's EOS appended when the tokenizer does not add it;
    /// &lt;extra_id_N&gt; marks a span to fill) and writes its output from the decoder start token, with the KV cache.</summary>
    private static int Translate(Models.EncoderDecoder model, ITokenizer tokenizer, string text, int maxTokens, Sampler sampler, TextWriter stdout, TextWriter stderr)
    {
        var c = model.Config;
        var source = SentinelText.Encode(tokenizer, text, c.VocabSize).ToList();
        if (source.Count == 0 || source[^1] != c.EosToken) source.Add(c.EosToken);
        if (source.Count > c.ContextLength)
            throw new ArgumentException($"--prompt is {source.Count} tokens with its EOS, more than the encoder's context length {c.ContextLength}");
        maxTokens = Math.Min(maxTokens, c.ContextLength - 1);   // the decoder's positions after its start token
        stdout.WriteLine(text);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var output = Inference.Seq2SeqGenerator.Generate(model, source, maxTokens, sampler);
        double seconds = clock.Elapsed.TotalSeconds;
        bool stopped = output.Count > 0 && output[^1] == c.EosToken;
        stdout.WriteLine(SentinelText.Decode(tokenizer, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(output)[..(output.Count - (stopped ? 1 : 0))], c.VocabSize));
        stderr.WriteLine($"{output.Count} tokens in {seconds:F2} s: {output.Count / Math.Max(seconds, 1e-9):F1} tokens/s (source {source.Count} tokens, encoded once; " +
                         $"decoder KV cache{(stopped ? "; stopped at EOS" : "")})");
        return 0;
    }
}
