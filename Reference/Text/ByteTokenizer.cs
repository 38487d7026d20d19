using System.Text;

namespace Llm.Text;

/// <summary>
/// The simplest tokenizer: one token per UTF-8 byte, V = 256. No training, no data files, and any byte string
/// round-trips exactly; the price is ~4x longer sequences than BPE on English and a model that must learn spelling.
/// </summary>
public sealed class ByteTokenizer : ITokenizer
{
    public string Name => "byte";
    public int VocabSize => 256;
    /// <summary>No id is free for a separator: all 256 are bytes.</summary>
    public int? EndOfText => null;

    // Replacement fallback: a sampled model may emit byte sequences that are not valid UTF-8 (a lone continuation
    // byte, a truncated multi-byte character); those decode to U+FFFD instead of throwing.
    static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        byte[] bytes = Utf8.GetBytes(text); // lone surrogates become U+FFFD's bytes (EF BF BD)
        var ids = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) ids[i] = bytes[i];
        return ids;
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        Tokenizers.CheckIds(ids, VocabSize, Name);
        var bytes = new byte[ids.Length];
        for (int i = 0; i < ids.Length; i++) bytes[i] = (byte)ids[i];
        return Utf8.GetString(bytes);
    }
}
