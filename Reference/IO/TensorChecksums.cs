using System.Globalization;
using System.IO.Hashing;

namespace Llm.IO;

/// <summary>
/// Per-tensor checksums in our own safetensors files, so that a flipped byte in the data is refused instead of loaded.
/// <see cref="SafeTensorsWriter"/> records, for every tensor, the CRC-32 of its raw little-endian bytes in
/// <c>__metadata__</c> under <c>"llm.crc32.&lt;tensor name&gt;"</c> as 8 lowercase hex digits; CRC-32 is zlib's (the
/// IEEE polynomial), so in Python <c>zlib.crc32(data) == int(metadata["llm.crc32." + name], 16)</c>.
/// <see cref="SafeTensorsFile"/> verifies each tensor that has one as it reads it; files without them (Hugging Face
/// downloads) load unchecked. Other readers see ordinary string metadata and ignore it.
/// </summary>
public static class TensorChecksums
{
    /// <summary>Metadata keys starting with this are checksums; the rest of the key is the tensor's name.</summary>
    public const string KeyPrefix = "llm.crc32.";
    /// <summary>A CRC-32 is 32 bits: 8 hex digits, always written in full so the writer can patch them in place.</summary>
    public const int Digits = 8;

    public static string KeyOf(string tensor) => KeyPrefix + tensor;

    public static string Format(uint crc) => crc.ToString("x8", CultureInfo.InvariantCulture);

    /// <summary>Exactly <see cref="Digits"/> hex digits (no sign, space or "0x").</summary>
    public static bool TryParse(string text, out uint crc)
    {
        crc = 0;
        return text.Length == Digits && text.All(char.IsAsciiHexDigit)
            && uint.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out crc);
    }
}

/// <summary>A write-only pass-through that hashes (CRC-32) and counts every byte on its way to <paramref name="inner"/>:
/// lets the writer checksum a tensor while its callback streams it, without a second pass over the file.</summary>
internal sealed class Crc32WriteStream(Stream inner) : Stream
{
    private readonly Crc32 _crc = new();

    public long BytesWritten { get; private set; }
    public uint Crc => _crc.GetCurrentHashAsUInt32();

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        inner.Write(buffer);
        _crc.Append(buffer);
        BytesWritten += buffer.Length;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    public override void WriteByte(byte value) => Write([value]);
    public override void Flush() => inner.Flush();

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => BytesWritten;
    /// <summary>Bytes written so far; the tensor is written front to back, so it cannot be moved.</summary>
    public override long Position
    {
        get => BytesWritten;
        set => throw new NotSupportedException("a tensor's data is written front to back; it cannot seek");
    }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("a tensor's data stream is write-only");
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("a tensor's data is written front to back; it cannot seek");
    public override void SetLength(long value) => throw new NotSupportedException("a tensor's data is written front to back; it cannot seek");
}
