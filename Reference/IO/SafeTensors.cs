using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Unicode;
using System.Text.Json;
using Llm.Tensors;
using Microsoft.Win32.SafeHandles;

namespace Llm.IO;

// The safetensors format (Hugging Face): [u64 little-endian N][N bytes of UTF-8 JSON header][data buffer].
// Header: { "__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, .. }
// with offsets in bytes relative to the start of the data buffer; elements are row-major and little-endian.

/// <summary>One tensor's header entry. <see cref="DType"/> is null for file dtypes this library does not compute in
/// (U8, BOOL, I64, ...): such tensors can be listed and skipped, or read as raw bytes, but not converted.</summary>
public sealed record SafeTensorInfo(string Name, string DTypeName, DType? DType, int[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (n, d) => n * d);
    public long ByteLength => End - Begin;
    public override string ToString() => $"{Name} {Tensor.ShapeString(Shape)} {DTypeName}";
}

/// <summary>
/// A validated, open safetensors file. <see cref="Read"/> parses and checks the whole header (offsets in range,
/// contiguous, sized shape × dtype); the data stays on disk and each Read* call streams one tensor straight into the
/// caller's span, converting F16/BF16/F64 to float on the way, and verifying the tensor's CRC-32 where the file records
/// one (<see cref="TensorChecksums"/>). Every problem is an <see cref="InvalidDataException"/> naming the file and the
/// tensor.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    /// <summary>The spec's limit; a larger "header length" means a corrupt or foreign file.</summary>
    public const long MaxHeaderBytes = 100_000_000;
    public const string MetadataKey = "__metadata__";

    /// <summary>Element size of every dtype name in the safetensors spec, and our DType where one exists.</summary>
    private static readonly Dictionary<string, (int Size, DType? DType)> FileDTypes = new()
    {
        ["F64"] = (8, Tensors.DType.F64), ["F32"] = (4, Tensors.DType.F32), ["F16"] = (2, Tensors.DType.F16),
        ["BF16"] = (2, Tensors.DType.BF16), ["I32"] = (4, Tensors.DType.I32),
        ["I64"] = (8, null), ["U64"] = (8, null), ["U32"] = (4, null), ["I16"] = (2, null), ["U16"] = (2, null),
        ["I8"] = (1, null), ["U8"] = (1, null), ["BOOL"] = (1, null), ["F8_E4M3"] = (1, null), ["F8_E5M2"] = (1, null),
    };

    public string Path { get; }
    /// <summary>Tensor names in header order.</summary>
    public IReadOnlyList<string> Names { get; }
    /// <summary>The "__metadata__" map (empty when absent), without the checksum entries, which are in <see cref="Checksums"/>.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Tensor name → the CRC-32 of its bytes recorded in the file; every Read* of such a tensor verifies it.</summary>
    public IReadOnlyDictionary<string, uint> Checksums { get; }
    /// <summary>File offset of the data buffer: 8 + header length.</summary>
    public long DataStart { get; }

    private readonly Dictionary<string, SafeTensorInfo> _infos;
    private readonly SafeFileHandle _handle;

    private SafeTensorsFile(string path, SafeFileHandle handle, Header header)
    {
        Path = path;
        _handle = handle;
        DataStart = header.DataStart;
        Names = header.Infos.Select(i => i.Name).ToList();
        _infos = header.Infos.ToDictionary(i => i.Name);
        Metadata = header.Metadata;
        Checksums = header.Checksums;
    }

    private sealed record Header(long DataStart, List<SafeTensorInfo> Infos, Dictionary<string, string> Metadata, Dictionary<string, uint> Checksums);

    public bool Contains(string name) => _infos.ContainsKey(name);

    public SafeTensorInfo Info(string name) => _infos.TryGetValue(name, out var info) ? info
        : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>Opens <paramref name="path"/> and validates its header; dispose to close the file.</summary>
    public static SafeTensorsFile Read(string path)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors data is little-endian; this reader assumes a little-endian host");
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            return new SafeTensorsFile(path, handle, ParseHeader(path, handle));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static Header ParseHeader(string path, SafeFileHandle handle)
    {
        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8)
            throw new InvalidDataException($"{path}: {fileLength} bytes is too short for a safetensors file (8-byte header length missing)");
        Span<byte> lengthBytes = stackalloc byte[8];
        ReadExactly(path, handle, lengthBytes, 0, "the header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        // The limit first: a wild length prefix is reported as such, whatever the file's size.
        if (headerLength > MaxHeaderBytes)
            throw new InvalidDataException($"{path}: header length {headerLength} exceeds the format's limit of {MaxHeaderBytes} bytes (corrupt, or not a safetensors file)");
        if (headerLength > (ulong)(fileLength - 8))
            throw new InvalidDataException($"{path}: header length {headerLength} exceeds the {fileLength - 8} bytes after it (truncated or not a safetensors file)");
        var header = new byte[headerLength];
        ReadExactly(path, handle, header, 8, "the header");
        if (header.Length == 0 || header[0] != (byte)'{')
            throw new InvalidDataException($"{path}: header does not start with '{{' (header length {headerLength} is wrong or the file is not safetensors)");
        // The spec says UTF-8; System.Text.Json parses other bytes inside strings and fails only when one is read.
        if (!Utf8.IsValid(header))
            throw new InvalidDataException($"{path}: header is not valid UTF-8 (first bad byte at header offset {FirstInvalidUtf8(header)})");

        JsonDocument document;
        try { document = JsonDocument.Parse(header); }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: header is not valid JSON: {e.Message}", e);
        }

        long dataStart = 8 + (long)headerLength;
        long bufferLength = fileLength - dataStart;
        var infos = new List<SafeTensorInfo>();
        var metadata = new Dictionary<string, string>();
        var seen = new HashSet<string>();
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: header is a JSON {document.RootElement.ValueKind}, not an object");
            foreach (var property in document.RootElement.EnumerateObject())
            {
                string name = NameOf(path, property, "a tensor name");
                if (!seen.Add(name))
                    throw new InvalidDataException($"{path}: header names '{name}' twice");
                if (name == MetadataKey)
                    ParseMetadata(path, property.Value, metadata);
                else
                    infos.Add(ParseEntry(path, name, property.Value, bufferLength));
            }
        }
        CheckLayout(path, infos, bufferLength);
        var checksums = TakeChecksums(path, metadata, infos);
        return new Header(dataStart, infos, metadata, checksums);
    }

    /// <summary>Offset of the first byte that does not begin a valid UTF-8 sequence.</summary>
    private static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        int offset = 0;
        while (offset < bytes.Length && Rune.DecodeFromUtf8(bytes[offset..], out _, out int consumed) == OperationStatus.Done)
            offset += consumed;
        return offset;
    }

    // JSON escapes can spell UTF-16 that is not Unicode (a lone surrogate, "\ud800"), which System.Text.Json refuses to
    // decode: reading one throws InvalidOperationException. These two turn that into the file's error.
    private static string NameOf(string path, JsonProperty property, string what)
    {
        try { return property.Name; }
        catch (InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: header holds {what} that is not valid Unicode (a lone surrogate escape such as \\ud800?)");
        }
    }

    private static string StringOf(string path, JsonElement element, string what)
    {
        try { return element.GetString()!; }
        catch (InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: {what} {element.GetRawText()} is not valid Unicode (a lone surrogate escape such as \\ud800?)");
        }
    }

    private static void ParseMetadata(string path, JsonElement element, Dictionary<string, string> metadata)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: {MetadataKey} is a JSON {element.ValueKind}, not an object of strings");
        foreach (var entry in element.EnumerateObject())
        {
            string key = NameOf(path, entry, $"a {MetadataKey} key");
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"{path}: {MetadataKey} entry '{key}' is a JSON {entry.Value.ValueKind}, not a string");
            metadata[key] = StringOf(path, entry.Value, $"{MetadataKey} entry '{key}' =");
        }
    }

    /// <summary>Moves the checksum entries out of <paramref name="metadata"/>: each must name a tensor of the file and
    /// hold 8 hex digits, or the file is refused (a damaged checksum cannot vouch for anything).</summary>
    private static Dictionary<string, uint> TakeChecksums(string path, Dictionary<string, string> metadata, List<SafeTensorInfo> infos)
    {
        var checksums = new Dictionary<string, uint>();
        var names = infos.Select(i => i.Name).ToHashSet();
        foreach (var (key, value) in metadata.Where(m => m.Key.StartsWith(TensorChecksums.KeyPrefix, StringComparison.Ordinal)).ToList())
        {
            string tensor = key[TensorChecksums.KeyPrefix.Length..];
            if (!names.Contains(tensor))
                throw new InvalidDataException($"{path}: {MetadataKey} entry '{key}' is the checksum of tensor '{tensor}', which the file does not hold");
            if (!TensorChecksums.TryParse(value, out uint crc))
                throw new InvalidDataException($"{path}: {MetadataKey} entry '{key}' = \"{value}\" is not a checksum ({TensorChecksums.Digits} hex digits of a CRC-32)");
            checksums[tensor] = crc;
            metadata.Remove(key);
        }
        return checksums;
    }

    private static SafeTensorInfo ParseEntry(string path, string name, JsonElement element, long bufferLength)
    {
        string at = $"{path}: tensor '{name}'";
        if (element.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{at}: entry is a JSON {element.ValueKind}, not an object");
        if (!element.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{at}: missing string field \"dtype\"");
        string dtypeName = StringOf(path, dtypeElement, $"tensor '{name}': dtype");
        if (!FileDTypes.TryGetValue(dtypeName, out var dtype))
            throw new InvalidDataException($"{at}: unknown dtype \"{dtypeName}\" (known: {string.Join(", ", FileDTypes.Keys)})");

        if (!element.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{at}: missing array field \"shape\"");
        var shape = new int[shapeElement.GetArrayLength()];
        int k = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out shape[k]) || shape[k] < 0)
                throw new InvalidDataException($"{at}: shape entry {d.GetRawText()} is not a dimension (a non-negative 32-bit integer)");
            k++;
        }

        if (!element.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw new InvalidDataException($"{at}: missing field \"data_offsets\" = [begin, end]");
        long begin = ParseOffset(at, offsets[0]), end = ParseOffset(at, offsets[1]);
        if (end < begin)
            throw new InvalidDataException($"{at}: data_offsets [{begin}, {end}] end before they begin");
        if (end > bufferLength)
            throw new InvalidDataException($"{at}: data_offsets [{begin}, {end}] run past the end of the data buffer ({bufferLength} bytes): file truncated or offsets out of range");

        var info = new SafeTensorInfo(name, dtypeName, dtype.DType, shape, begin, end);
        long elements = shape.Contains(0) ? 0 : 1; // a zero anywhere makes it empty, however large the rest
        foreach (int d in shape)
            elements = elements == 0 || elements <= long.MaxValue / 8 / d ? elements * d
                : throw new InvalidDataException($"{at}: shape {Tensor.ShapeString(shape)} is too large (more than 2⁶⁰ elements)");
        if (elements * dtype.Size != end - begin)
            throw new InvalidDataException($"{at}: data_offsets [{begin}, {end}] hold {end - begin} bytes but shape {Tensor.ShapeString(shape)} of {dtypeName} needs {elements * dtype.Size}");
        return info;
    }

    private static long ParseOffset(string at, JsonElement element) =>
        element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out long v) && v >= 0 ? v
            : throw new InvalidDataException($"{at}: data offset {element.GetRawText()} is not a non-negative integer");

    /// <summary>The tensors must tile the buffer exactly, as the reference implementation requires: no overlaps (two
    /// tensors sharing bytes), no holes, nothing after the last one.</summary>
    private static void CheckLayout(string path, List<SafeTensorInfo> infos, long bufferLength)
    {
        long expected = 0;
        SafeTensorInfo? previous = null;
        foreach (var info in infos.OrderBy(i => i.Begin).ThenBy(i => i.End))
        {
            if (info.Begin < expected)
                throw new InvalidDataException($"{path}: tensor '{info.Name}' bytes [{info.Begin}, {info.End}) overlap tensor '{previous!.Name}' [{previous.Begin}, {previous.End})");
            if (info.Begin > expected)
                throw new InvalidDataException($"{path}: tensor '{info.Name}' begins at byte {info.Begin}, leaving bytes [{expected}, {info.Begin}) of the buffer unused");
            expected = info.End;
            previous = info;
        }
        if (expected != bufferLength)
            throw new InvalidDataException($"{path}: the tensors cover {expected} bytes but the data buffer has {bufferLength} (trailing bytes, or a wrong header length)");
    }

    // ---- reading tensors ----------------------------------------------------------------------------------------

    /// <summary>Raw little-endian bytes of one tensor.</summary>
    public void ReadBytes(string name, Span<byte> destination)
    {
        var info = Info(name);
        CheckLength(info, destination.Length, info.ByteLength, "bytes");
        ReadExactly(Path, _handle, destination, DataStart + info.Begin, $"tensor '{name}'");
        if (Checksums.ContainsKey(name)) Verify(info, Crc32.HashToUInt32(destination));
    }

    /// <summary>One tensor as float: F32 exactly, F16 and BF16 exactly (every value is representable), F64 rounded.</summary>
    public void ReadFloat(string name, Span<float> destination)
    {
        var info = Info(name);
        CheckLength(info, destination.Length, info.ElementCount, "floats");
        switch (info.DType)
        {
            case Tensors.DType.F32:
                ReadBytes(name, MemoryMarshal.AsBytes(destination)); // already the right bits: no conversion copy
                break;
            case Tensors.DType.F16:
                ReadConverted(info, destination, 2, static (src, dst) => System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(src), dst));
                break;
            case Tensors.DType.BF16:
                ReadConverted(info, destination, 2, static (src, dst) => BFloat16ToSingle(MemoryMarshal.Cast<byte, ushort>(src), dst));
                break;
            case Tensors.DType.F64:
                ReadConverted(info, destination, 8, static (src, dst) =>
                {
                    var d = MemoryMarshal.Cast<byte, double>(src);
                    for (int i = 0; i < d.Length; i++) dst[i] = (float)d[i];
                });
                break;
            default:
                throw new InvalidDataException($"{Path}: tensor '{name}' has dtype {info.DTypeName}, which cannot be read as float");
        }
    }

    /// <summary>One tensor as double: F64 exactly, and F32/F16/BF16 widened exactly.</summary>
    public void ReadDouble(string name, Span<double> destination)
    {
        var info = Info(name);
        CheckLength(info, destination.Length, info.ElementCount, "doubles");
        if (info.DType == Tensors.DType.F64)
        {
            ReadBytes(name, MemoryMarshal.AsBytes(destination));
            return;
        }
        var floats = new float[info.ElementCount];
        ReadFloat(name, floats);
        for (int i = 0; i < floats.Length; i++) destination[i] = floats[i];
    }

    /// <summary>An I32 tensor.</summary>
    public void ReadInt32(string name, Span<int> destination)
    {
        var info = Info(name);
        CheckLength(info, destination.Length, info.ElementCount, "ints");
        if (info.DType != Tensors.DType.I32)
            throw new InvalidDataException($"{Path}: tensor '{name}' has dtype {info.DTypeName}, expected I32");
        ReadBytes(name, MemoryMarshal.AsBytes(destination));
    }

    /// <summary>bfloat16 is the top half of a float32: shifting its bits up 16 places is the exact conversion.</summary>
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"bfloat16 conversion: {source.Length} values do not fit in a destination of {destination.Length}");
        for (int i = 0; i < source.Length; i++) destination[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
    }

    private delegate void Converter<T>(ReadOnlySpan<byte> source, Span<T> destination);

    /// <summary>Streams a tensor through a pooled buffer of at most 1 MiB, converting one chunk at a time (and
    /// hashing the file's bytes on the way when a checksum is recorded).</summary>
    private void ReadConverted<T>(SafeTensorInfo info, Span<T> destination, int elementSize, Converter<T> convert)
    {
        const int chunkBytes = 1 << 20;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(chunkBytes);
        var crc = Checksums.ContainsKey(info.Name) ? new Crc32() : null;
        try
        {
            int perChunk = chunkBytes / elementSize;
            for (int start = 0; start < destination.Length; start += perChunk)
            {
                int n = Math.Min(perChunk, destination.Length - start);
                var bytes = buffer.AsSpan(0, n * elementSize);
                ReadExactly(Path, _handle, bytes, DataStart + info.Begin + (long)start * elementSize, $"tensor '{info.Name}'");
                crc?.Append(bytes);
                convert(bytes, destination.Slice(start, n));
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
        if (crc is not null) Verify(info, crc.GetCurrentHashAsUInt32());
    }

    private void Verify(SafeTensorInfo info, uint actual)
    {
        uint recorded = Checksums[info.Name];
        if (actual != recorded)
            throw new InvalidDataException($"{Path}: tensor '{info.Name}': checksum mismatch (recorded CRC-32 {TensorChecksums.Format(recorded)}, the data has {TensorChecksums.Format(actual)}): the file is corrupt");
    }

    private void CheckLength(SafeTensorInfo info, long given, long needed, string unit)
    {
        if (given != needed)
            throw new ArgumentException($"{Path}: tensor {info} has {needed} {unit}, destination has {given}");
    }

    private static void ReadExactly(string path, SafeFileHandle handle, Span<byte> destination, long offset, string what)
    {
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(handle, destination, offset);
            if (n == 0)
                throw new InvalidDataException($"{path}: file ended at byte {offset} while reading {what} (truncated since it was opened?)");
            destination = destination[n..];
            offset += n;
        }
    }

    public void Dispose() => _handle.Dispose();
}

/// <summary>One tensor to write: its header fields and a callback that writes exactly
/// <see cref="ByteLength"/> little-endian bytes. The callback runs only when the writer reaches the tensor, so a
/// model can be saved one tensor at a time without a host copy of the whole file.</summary>
public sealed record SafeTensorsEntry(string Name, DType DType, int[] Shape, Action<Stream> WriteData)
{
    public long ByteLength => (long)Tensor.ElementCount(Shape) * DType.Size();

    /// <summary>Raw bytes already in the file's layout.</summary>
    public static SafeTensorsEntry FromBytes(string name, DType dtype, int[] shape, ReadOnlyMemory<byte> data) =>
        new(name, dtype, shape, stream => stream.Write(data.Span));

    /// <summary>A host array: float → F32, double → F64, int → I32, Half → F16.</summary>
    public static SafeTensorsEntry FromArray<T>(string name, int[] shape, ReadOnlyMemory<T> data) where T : unmanaged
    {
        DType dtype = default(T) switch
        {
            float => DType.F32,
            double => DType.F64,
            int => DType.I32,
            Half => DType.F16,
            _ => throw new ArgumentException($"tensor '{name}': only float, double, int and Half arrays have a safetensors dtype (F32, F64, I32, F16)"),
        };
        return new(name, dtype, shape, stream => stream.Write(MemoryMarshal.AsBytes(data.Span)));
    }

    /// <summary>A backend tensor, downloaded only when written (one tensor's host copy at a time).</summary>
    public static SafeTensorsEntry FromTensor(Tensor tensor, string? name = null)
    {
        string n = name ?? tensor.Name ?? throw new ArgumentException($"{tensor.Describe()} needs a name to be saved");
        return new(n, tensor.DType, tensor.Shape, stream =>
        {
            switch (tensor.DType)
            {
                case DType.F32: WriteDownloaded<float>(tensor, stream); break;
                case DType.F64: WriteDownloaded<double>(tensor, stream); break;
                case DType.I32: WriteDownloaded<int>(tensor, stream); break;
                default: throw new NotSupportedException($"saving {tensor.Describe()}: download of {tensor.DType} is not supported");
            }
        });
    }

    private static void WriteDownloaded<T>(Tensor tensor, Stream stream) where T : unmanaged
    {
        var host = GC.AllocateUninitializedArray<T>(tensor.Length);
        tensor.Backend.Download<T>(tensor, host);
        stream.Write(MemoryMarshal.AsBytes(host.AsSpan()));
    }
}

/// <summary>Writes safetensors files atomically (see <see cref="AtomicFile"/>), tensors in the order given,
/// header padded with spaces to 8 bytes as Hugging Face does, so the data buffer starts aligned. Every tensor's CRC-32
/// goes into the metadata (<see cref="TensorChecksums"/>): the header precedes the data, so it is written with
/// "00000000" placeholders, each tensor is hashed as its callback streams it, and the digits are patched in place
/// before the file is flushed and renamed (same length, so the header stays valid JSON).</summary>
public static class SafeTensorsWriter
{
    private static readonly Dictionary<DType, string> DTypeNames = new()
    {
        [DType.F32] = "F32", [DType.F64] = "F64", [DType.I32] = "I32", [DType.F16] = "F16", [DType.BF16] = "BF16",
    };

    public static void Write(string path, IEnumerable<SafeTensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors data is little-endian; this writer assumes a little-endian host");
        var entries = tensors.ToList();
        var (header, checksumAt) = BuildHeader(path, entries, metadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            var crcs = new uint[entries.Count];
            for (int i = 0; i < entries.Count; i++)
            {
                var entry = entries[i];
                var hashing = new Crc32WriteStream(stream);
                entry.WriteData(hashing);
                if (hashing.BytesWritten != entry.ByteLength)
                    throw new InvalidOperationException($"{path}: tensor '{entry.Name}' {Tensor.ShapeString(entry.Shape)} {entry.DType}: wrote {hashing.BytesWritten} bytes, expected {entry.ByteLength}");
                crcs[i] = hashing.Crc;
            }
            for (int i = 0; i < entries.Count; i++)
            {
                stream.Seek(8 + checksumAt[i], SeekOrigin.Begin);
                stream.Write(Encoding.ASCII.GetBytes(TensorChecksums.Format(crcs[i])));
            }
        });
    }

    /// <summary>The JSON header, padded with spaces to a multiple of 8 bytes (without the length prefix), and for each
    /// entry the header offset of its checksum's placeholder digits.</summary>
    internal static (byte[] Header, long[] ChecksumAt) BuildHeader(string path, IReadOnlyList<SafeTensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var names = new HashSet<string>();
        foreach (var e in entries)
        {
            if (e.Name == SafeTensorsFile.MetadataKey || string.IsNullOrEmpty(e.Name))
                throw new ArgumentException($"{path}: '{e.Name}' is not a valid tensor name");
            if (!names.Add(e.Name))
                throw new ArgumentException($"{path}: tensor '{e.Name}' given twice");
            if (!DTypeNames.ContainsKey(e.DType))
                throw new ArgumentException($"{path}: tensor '{e.Name}': dtype {e.DType} has no safetensors name");
        }
        foreach (var key in metadata?.Keys ?? [])
            if (key.StartsWith(TensorChecksums.KeyPrefix, StringComparison.Ordinal))
                throw new ArgumentException($"{path}: metadata key '{key}' is reserved: the writer records each tensor's checksum under '{TensorChecksums.KeyPrefix}<name>'");

        var checksumAt = new long[entries.Count];
        var json = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 } || entries.Count > 0)
            {
                writer.WriteStartObject(SafeTensorsFile.MetadataKey);
                foreach (var (key, value) in metadata ?? new Dictionary<string, string>()) writer.WriteString(key, value);
                for (int i = 0; i < entries.Count; i++)
                {
                    writer.WriteString(TensorChecksums.KeyOf(entries[i].Name), new string('0', TensorChecksums.Digits));
                    writer.Flush();
                    checksumAt[i] = json.WrittenCount - 1 - TensorChecksums.Digits; // the digits, before the closing quote
                }
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var e in entries)
            {
                writer.WriteStartObject(e.Name);
                writer.WriteString("dtype", DTypeNames[e.DType]);
                writer.WriteStartArray("shape");
                foreach (int d in e.Shape) writer.WriteNumberValue(d);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset += e.ByteLength);
                writer.WriteEndArray();
                writer.WriteEndObject();
            }
            writer.WriteEndObject();
        }
        int padded = (json.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        json.WrittenSpan.CopyTo(header);
        header.AsSpan(json.WrittenCount).Fill((byte)' ');
        return (header, checksumAt);
    }
}
