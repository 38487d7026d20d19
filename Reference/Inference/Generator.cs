using Llm.Autograd;
using Llm.Models;
using Llm.Tensors;

namespace Llm.Inference;

/// <summary>
/// Autoregressive generation, step by step: run the model on the context (cropped to its last ContextLength tokens),
/// take the logits of the last position, let the sampler pick the next token, append it, repeat.
/// Without a KV cache each step recomputes the whole window: O(T²) per token, fine for the small models here.
/// </summary>
public static class Generator
{
    /// <param name="tape">Where the activations come from; by default a tape of the generation's own, given back when
    /// the enumeration ends. Its pool holds one forward at the current length at a time.</param>
    public static IEnumerable<int> Generate(Decoder model, IReadOnlyList<int> prompt, int maxNewTokens, Sampler sampler, Tape? tape = null)
    {
        if (prompt.Count == 0) throw new ArgumentException("generation needs at least one prompt token");
        if (maxNewTokens < 0) throw new ArgumentException($"the number of new tokens must be ≥ 0, got {maxNewTokens}");
        int V = model.Config.VocabSize;
        foreach (int id in prompt)
            if ((uint)id >= (uint)V) throw new ArgumentException($"prompt token {id} is outside the model's vocabulary of {V}");

        return Steps(model, prompt, maxNewTokens, sampler, tape);
    }

    private static IEnumerable<int> Steps(Decoder model, IReadOnlyList<int> prompt, int maxNewTokens, Sampler sampler, Tape? given)
    {
        int V = model.Config.VocabSize;
        var backend = model.Backend;
        var tape = given ?? new Tape(backend, recording: false);  // inference: nothing is saved for backward
        try
        {
            var context = new List<int>(prompt);
            var lastLogits = new float[V];                    // [V] logits of the last position
            for (int i = 0; i < maxNewTokens; i++)
            {
                // 1. the window the model can see: the last ContextLength tokens
                int start = Math.Max(0, context.Count - model.Config.ContextLength);
                int T = context.Count - start;
                var ids = tape.Temp(DType.I32, [1, T], "context");  // [1, T]
                backend.Upload<int>(context.GetRange(start, T).ToArray(), ids);
                // 2. forward; only the last row of the logits matters
                var logits = model.Forward(tape, ids);               // [1, T, V]
                var last = logits.Value.Reshape(T * V).Slice((T - 1) * V, [V]);
                backend.DownloadFloats(last, lastLogits);
                tape.Reset();
                // 3. sample (the repetition penalty sees the whole context, as Hugging Face's does), append, yield
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
}
