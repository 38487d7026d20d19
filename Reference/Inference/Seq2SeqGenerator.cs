using Llm.Autograd;
using Llm.Models;
using Llm.Tensors;

namespace Llm.Inference;

/// <summary>
/// Generation with an encoder-decoder: the source is encoded once, then the decoder runs from the decoder start token,
/// one new token per step over an <see cref="EncoderDecoderCache"/> (its self-attention keys grow by one, its
/// cross-attention keys were computed at the first step), until the stop token or maxNewTokens. The output is the new
/// tokens (the stop token included when reached), not the start token. <see cref="GenerateWithoutCache"/> re-runs the
/// decoder over every token so far at each step: the definition the cache must equal.
/// </summary>
public static class Seq2SeqGenerator
{
    /// <param name="stopToken">Generation ends after this token; default the config's eos token; null: never.</param>
    public static List<int> Generate(EncoderDecoder model, IReadOnlyList<int> source, int maxNewTokens, Sampler sampler, int? stopToken = -1) =>
        Run(model, source, maxNewTokens, sampler, stopToken, cached: true, logits: null);

    public static List<int> GenerateWithoutCache(EncoderDecoder model, IReadOnlyList<int> source, int maxNewTokens, Sampler sampler, int? stopToken = -1) =>
        Run(model, source, maxNewTokens, sampler, stopToken, cached: false, logits: null);

    /// <summary>As <see cref="Generate"/> or <see cref="GenerateWithoutCache"/>, adding each step's logits [V] to <paramref name="logits"/> (for tests).</summary>
    public static List<int> Run(EncoderDecoder model, IReadOnlyList<int> source, int maxNewTokens, Sampler sampler, int? stopToken, bool cached, List<float[]>? logits)
    {
        var c = model.Config;
        if (source.Count == 0) throw new ArgumentException("generation needs at least one source token");
        if (source.Count > c.ContextLength) throw new ArgumentException($"the source's {source.Count} tokens exceed the context length {c.ContextLength}");
        if (maxNewTokens < 0) throw new ArgumentException($"the number of new tokens must be ≥ 0, got {maxNewTokens}");
        if (maxNewTokens + 1 > c.ContextLength)
            throw new ArgumentException($"{maxNewTokens} new tokens after the start token exceed the decoder's context length {c.ContextLength}");
        foreach (int id in source)
            if ((uint)id >= (uint)c.VocabSize) throw new ArgumentException($"source token {id} is outside the model's vocabulary of {c.VocabSize}");
        int stop = stopToken == -1 ? c.EosToken : stopToken ?? -1;

        using var encoderTape = new Tape(model.Backend, recording: false);   // holds the encoder's output for the whole generation
        using var tape = new Tape(model.Backend, recording: false);          // one step's activations at a time
        using var cache = cached ? new EncoderDecoderCache(model, 1, maxNewTokens + 1) : null;
        var encoded = model.Encode(encoderTape, encoderTape.Ids(source.ToArray(), [1, source.Count], "source"));   // [1, Te, C]
        var context = new List<int> { c.DecoderStartToken };
        var output = new List<int>();
        var last = new float[c.VocabSize];
        for (int i = 0; i < maxNewTokens; i++)
        {
            var step = cached ? context.GetRange(context.Count - 1, 1) : context;           // the new token, or all of them
            var ids = tape.Ids(step.ToArray(), [1, step.Count], "decoder tokens");
            var result = model.Decode(tape, ids, encoded, cache);                            // [1, T, V]
            model.Backend.DownloadFloats(result.Value.Reshape(step.Count * c.VocabSize).Slice((step.Count - 1) * c.VocabSize, [c.VocabSize]), last);
            tape.Reset();
            logits?.Add((float[])last.Clone());
            int next = sampler.Next(last, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(output));
            context.Add(next);
            output.Add(next);
            if (next == stop) break;
        }
        return output;
    }
}
