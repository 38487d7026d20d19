using Llm.Autograd;
using Llm.Models;
using Llm.Tensors;

namespace Llm.Inference;

/// <summary>
/// Autoregressive generation with a KV cache: one forward over the prompt (prefill) fills the cache, then each step
/// runs the model on the one new token, attending over the cached keys and values: O(T) per token. When the cache is
/// full (the context length), it is refilled from the last half of the context, so long generations slide a window.
/// <see cref="GenerateWithoutCache"/> recomputes the whole window every step: the definition the cache must equal.
/// </summary>
public static class Generator
{
    /// <param name="tape">Where the activations come from; by default a tape of the generation's own, given back when
    /// the enumeration ends. Its pool holds one step's activations at a time.</param>
    public static IEnumerable<int> Generate(Decoder model, IReadOnlyList<int> prompt, int maxNewTokens, Sampler sampler, Tape? tape = null)
    {
        Check(model, prompt, maxNewTokens);
        return Steps(model, prompt, maxNewTokens, sampler, tape);
    }

    /// <summary>Every step a forward over the whole window (the last ContextLength tokens): O(T²) per token.</summary>
    public static IEnumerable<int> GenerateWithoutCache(Decoder model, IReadOnlyList<int> prompt, int maxNewTokens, Sampler sampler, Tape? tape = null)
    {
        Check(model, prompt, maxNewTokens);
        return StepsWithoutCache(model, prompt, maxNewTokens, sampler, tape);
    }

    private static void Check(Decoder model, IReadOnlyList<int> prompt, int maxNewTokens)
    {
        if (prompt.Count == 0) throw new ArgumentException("generation needs at least one prompt token");
        if (maxNewTokens < 0) throw new ArgumentException($"the number of new tokens must be ≥ 0, got {maxNewTokens}");
        int V = model.Config.VocabSize;
        foreach (int id in prompt)
            if ((uint)id >= (uint)V) throw new ArgumentException($"prompt token {id} is outside the model's vocabulary of {V}");
    }

    private static IEnumerable<int> Steps(Decoder model, IReadOnlyList<int> prompt, int maxNewTokens, Sampler sampler, Tape? given)
    {
        int V = model.Config.VocabSize, ctx = model.Config.ContextLength;
        var tape = given ?? new Tape(model.Backend, recording: false);  // inference: nothing is saved for backward
        using var cache = new KvCache(model, 1, ctx);
        try
        {
            var context = new List<int>(prompt);
            var lastLogits = new float[V];                                      // [V] logits of the last position
            int pending = Math.Min(context.Count, ctx);                         // tokens not in the cache yet: the prompt's window
            for (int i = 0; i < maxNewTokens; i++)
            {
                if (cache.Remaining < pending)                                  // full: refill from the last half of the context
                {
                    cache.Clear();
                    pending = Math.Min(context.Count, ctx / 2 + 1);
                }
                Forward(model, tape, cache, context.GetRange(context.Count - pending, pending), lastLogits);
                // the repetition penalty sees the whole context, as Hugging Face's does
                int next = sampler.Next(lastLogits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(context));
                context.Add(next);
                pending = 1;
                yield return next;
            }
        }
        finally
        {
            if (given is null) tape.Dispose();
        }
    }

    /// <summary>Runs <paramref name="tokens"/> through the model (on top of the cache, when there is one); the last
    /// position's logits into <paramref name="lastLogits"/>.</summary>
    private static void Forward(Decoder model, Tape tape, KvCache? cache, List<int> tokens, float[] lastLogits)
    {
        int T = tokens.Count, V = model.Config.VocabSize;
        var ids = tape.Ids(tokens.ToArray(), [1, T], "tokens");               // [1, T]
        var logits = model.Forward(tape, ids, cache is null ? null : new DecoderInputs { Cache = cache });   // [1, T, V]
        model.Backend.DownloadFloats(logits.Value.Reshape(T * V).Slice((T - 1) * V, [V]), lastLogits);
        tape.Reset();
    }

    private static IEnumerable<int> StepsWithoutCache(Decoder model, IReadOnlyList<int> prompt, int maxNewTokens, Sampler sampler, Tape? given)
    {
        var tape = given ?? new Tape(model.Backend, recording: false);
        try
        {
            var context = new List<int>(prompt);
            var lastLogits = new float[model.Config.VocabSize];
            for (int i = 0; i < maxNewTokens; i++)
            {
                int start = Math.Max(0, context.Count - model.Config.ContextLength);
                Forward(model, tape, null, context.GetRange(start, context.Count - start), lastLogits);   // the whole window
                int next = sampler.Next(lastLogits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(context));
                context.Add(next);
                yield return next;
            }
        }
        finally
        {
            if (given is null) tape.Dispose();
        }
    }

    /// <summary>
    /// Several prompts of different lengths at once: left-padded to the longest, the padding in a segment of its own
    /// (so no real token attends to it) and each sequence's positions counted from its first real token, so every
    /// sequence continues exactly as it would alone. Prompt plus new tokens must fit the context length.
    /// </summary>
    public static int[][] GenerateBatch(Decoder model, IReadOnlyList<IReadOnlyList<int>> prompts, int maxNewTokens, Sampler sampler)
    {
        if (prompts.Count == 0) throw new ArgumentException("batched generation needs at least one prompt");
        foreach (var p in prompts) Check(model, p, maxNewTokens);
        int B = prompts.Count, P = prompts.Max(p => p.Count), V = model.Config.VocabSize;
        if (P + maxNewTokens > model.Config.ContextLength)
            throw new ArgumentException($"the longest prompt ({P} tokens) plus {maxNewTokens} new tokens exceeds the context length {model.Config.ContextLength}");
        var backend = model.Backend;
        using var tape = new Tape(backend, recording: false);
        using var cache = new KvCache(model, B, P + Math.Max(maxNewTokens, 1), segments: true);
        var pad = prompts.Select(p => P - p.Count).ToArray();
        var outputs = Enumerable.Range(0, B).Select(_ => new List<int>()).ToArray();
        var contexts = prompts.Select(p => new List<int>(p)).ToArray();
        var logits = new float[V];

        int T = P;
        var tokens = new int[B * P];
        for (int b = 0; b < B; b++) prompts[b].ToArray().CopyTo(tokens, b * P + pad[b]);   // padding: token 0, never seen
        for (int step = 0; step < maxNewTokens; step++)
        {
            var segments = new int[B * T];
            var positions = new int[B * T];
            for (int b = 0; b < B; b++)
                for (int i = 0; i < T; i++)
                {
                    int p = cache.Length + i;
                    segments[b * T + i] = p < pad[b] ? 1 : 0;
                    positions[b * T + i] = Math.Max(0, p - pad[b]);
                }
            for (int b = 0; b < B; b++) cache.SetSegments(b, segments.AsSpan(b * T, T));
            var ids = tape.Ids(tokens, [B, T], "tokens");
            var result = model.Forward(tape, ids, new DecoderInputs
            {
                Cache = cache, Segments = tape.Ids(segments, [B, T], "segments"), Positions = tape.Ids(positions, [B, T], "positions"),
            });                                                                                // [B, T, V]
            var all = result.Value.Reshape(B * T * V);
            tokens = new int[B];
            for (int b = 0; b < B; b++)
            {
                backend.DownloadFloats(all.Slice((b * T + T - 1) * V, [V]), logits);
                int next = sampler.Next(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(contexts[b]));
                contexts[b].Add(next);
                outputs[b].Add(next);
                tokens[b] = next;
            }
            tape.Reset();
            T = 1;
        }
        return [.. outputs.Select(o => o.ToArray())];
    }
}
