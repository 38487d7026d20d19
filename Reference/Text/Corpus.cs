using System.Text;

namespace Llm.Text;

/// <summary>Training text: Jane Austen's Pride and Prejudice (public domain) built into the assembly, or a file.</summary>
public static class Corpus
{
    public const string PrideAndPrejudiceResource = "Llm.Corpus.prideprejudice.txt";

    static readonly Lazy<string> prideAndPrejudice = new(() => ReadResource(PrideAndPrejudiceResource));

    /// <summary>The full novel, ~680 kB of UTF-8 (≈ 700k byte tokens, ≈ 160k GPT-2 tokens).</summary>
    public static string PrideAndPrejudice => prideAndPrejudice.Value;

    /// <summary>
    /// The text of <paramref name="path"/> (UTF-8, BOM stripped), or the embedded novel when it is null.
    /// A missing, unreadable or empty file, or a directory, throws naming it. Bytes that are not UTF-8 become U+FFFD
    /// (the text is converted, not refused), and <paramref name="warn"/> hears how many there were.
    /// </summary>
    /// <param name="warn">Receives "FILE: N bytes are not valid UTF-8 and were replaced by U+FFFD" when N &gt; 0.</param>
    public static string Load(string? path, Action<string>? warn = null)
    {
        if (path is null) return PrideAndPrejudice;
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("the corpus file name is empty");
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
            throw new FileNotFoundException($"corpus file '{full}' is a directory, not a text file", full);
        if (!File.Exists(full))
            throw new FileNotFoundException($"corpus file '{full}' does not exist", full);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"corpus file '{full}' could not be read: {e.Message}", e);
        }
        ReadOnlySpan<byte> bom = [0xEF, 0xBB, 0xBF];
        int start = bytes.AsSpan().StartsWith(bom) ? bom.Length : 0;
        var invalid = new CountingReplacementFallback();
        var utf8 = Encoding.GetEncoding("utf-8", EncoderFallback.ReplacementFallback, invalid);
        // one decoding pass: Encoding.GetString counts the characters first and so calls the fallback twice
        var chars = new char[utf8.GetMaxCharCount(bytes.Length - start)];
        int length = utf8.GetDecoder().GetChars(bytes, start, bytes.Length - start, chars, 0, flush: true);
        string text = new(chars, 0, length);
        if (text.Length == 0) throw new InvalidDataException($"corpus file '{full}' is empty");
        if (invalid.Bytes > 0) warn?.Invoke($"{full}: {invalid.Bytes:N0} bytes are not valid UTF-8 and were replaced by U+FFFD");
        return text;
    }

    /// <summary>The decoder's usual replacement (one U+FFFD per invalid sequence), counting the bytes it replaced.</summary>
    sealed class CountingReplacementFallback : DecoderFallback
    {
        public long Bytes { get; private set; }
        public override int MaxCharCount => 1;
        public override DecoderFallbackBuffer CreateFallbackBuffer() => new Buffer(this);

        sealed class Buffer(CountingReplacementFallback owner) : DecoderFallbackBuffer
        {
            bool pending;  // the U+FFFD not yet handed out

            public override bool Fallback(byte[] bytesUnknown, int index)
            {
                owner.Bytes += bytesUnknown.Length;
                pending = true;
                return true;
            }

            public override char GetNextChar()
            {
                if (!pending) return '\0';
                pending = false;
                return '\uFFFD';
            }

            public override bool MovePrevious() => false;
            public override int Remaining => pending ? 1 : 0;
        }
    }

    static string ReadResource(string name)
    {
        using Stream stream = typeof(Corpus).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException(
                $"embedded resource '{name}' is missing from {typeof(Corpus).Assembly.GetName().Name}; " +
                $"present: {string.Join(", ", typeof(Corpus).Assembly.GetManifestResourceNames())}");
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }
}
