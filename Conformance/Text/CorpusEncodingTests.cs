using System.Text;
using Llm.Text;
using Xunit;

namespace Llm.Conformance.Text;

/// <summary>A corpus that is not valid UTF-8 is converted, not refused, and the caller hears how many bytes were bad.</summary>
public sealed class CorpusEncodingTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"llm-corpus-{Guid.NewGuid():N}.txt");

    public void Dispose() => File.Delete(_path);

    private (string Text, List<string> Warnings) Load(byte[] bytes)
    {
        File.WriteAllBytes(_path, bytes);
        var warnings = new List<string>();
        return (Corpus.Load(_path, warnings.Add), warnings);
    }

    [Fact]
    public void Invalid_bytes_become_replacement_characters_and_are_counted_once()
    {
        // Latin-1 é (1 bad byte), a lone continuation byte (1), a 3-byte sequence cut short at the end (2, one U+FFFD)
        byte[] bytes = [.. "caf"u8, 0xE9, .. " au lait "u8, 0x80, .. " x "u8, 0xE2, 0x82];
        var (text, warnings) = Load(bytes);
        Assert.Equal("caf\uFFFD au lait \uFFFD x \uFFFD", text);
        Assert.Equal($"{Path.GetFullPath(_path)}: 4 bytes are not valid UTF-8 and were replaced by U+FFFD", Assert.Single(warnings));
        Assert.Equal(text, Corpus.Load(_path));  // without a listener the text is the same
    }

    [Fact]
    public void Valid_utf8_gives_no_warning_and_loses_its_bom()
    {
        var (text, warnings) = Load([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("naïve € 𝄞\n")]);
        Assert.Equal("naïve € 𝄞\n", text);
        Assert.Empty(warnings);
    }

    [Fact]
    public void A_legitimate_replacement_character_is_not_counted()
    {
        var (text, warnings) = Load(Encoding.UTF8.GetBytes("already \uFFFD here"));
        Assert.Equal("already \uFFFD here", text);
        Assert.Empty(warnings);
    }
}
