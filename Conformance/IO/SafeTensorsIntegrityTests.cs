using System.IO.Hashing;
using System.Text;
using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Xunit;
using static Llm.Conformance.IO.CheckpointTests;

namespace Llm.Conformance.IO;

/// <summary>Headers that are not Unicode, out-of-limit lengths and shapes, and the per-tensor CRC-32 that turns a
/// flipped data byte into a refusal naming the tensor.</summary>
public sealed class SafeTensorsIntegrityTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-integrity-tests-" + Guid.NewGuid().ToString("N"));
    private readonly CpuBackend _cpu = new();

    public SafeTensorsIntegrityTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static InvalidDataException RefusedToOpen(string path)
    {
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Read(path).Dispose());
        Assert.Contains(path, e.Message);
        return e;
    }

    private static void FlipByte(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        int b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ 0x10));
    }

    /// <summary>The tensor whose bytes hold the middle byte of the file, and that byte's file offset.</summary>
    private static (string Tensor, long Offset) MiddleOf(string path)
    {
        using var file = SafeTensorsFile.Read(path);
        long middle = new FileInfo(path).Length / 2;
        var info = file.Names.Select(file.Info).Single(i => file.DataStart + i.Begin <= middle && middle < file.DataStart + i.End);
        return (info.Name, middle);
    }

    /// <summary>Micro's parameters in a safetensors file built by hand, as another program would write it: no checksums.</summary>
    private static void WriteWithoutChecksums(string path, ParameterSet parameters, CpuBackend cpu)
    {
        var header = new StringBuilder("{\"__metadata__\": {\"format\": \"pt\"}");
        var data = new MemoryStream();
        foreach (var p in parameters.All)
        {
            var host = new float[p.Value.Length];
            cpu.Download<float>(p.Value, host);
            long begin = data.Length;
            data.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(host.AsSpan()));
            header.Append($", \"{p.Name}\": {{\"dtype\": \"F32\", \"shape\": [{string.Join(", ", p.Shape)}], \"data_offsets\": [{begin}, {data.Length}]}}");
        }
        WriteRaw(path, header.Append('}').ToString(), data.ToArray());
    }

    private ParameterSet RandomMicro(ulong seed) => CheckpointTests.RandomMicro(_cpu, seed);

    private float[] Download(Tensor t) => CheckpointTests.Download(_cpu, t);

    // ---- headers that are not Unicode ---------------------------------------------------------------------------

    [Theory]
    [InlineData("tensor name", """{"w#": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""")]
    [InlineData("metadata key", """{"__metadata__": {"k#": "v"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""")]
    [InlineData("metadata value", """{"__metadata__": {"k": "v#"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""")]
    [InlineData("dtype", """{"w": {"dtype": "F3#", "shape": [2], "data_offsets": [0, 8]}}""")]
    public void Header_bytes_that_are_not_utf8_are_refused_as_corrupt(string where, string header)
    {
        // '#' stands for the byte 0xFF, which never occurs in UTF-8.
        var bytes = Encoding.ASCII.GetBytes(header).Select(b => b == (byte)'#' ? (byte)0xFF : b).ToArray();
        string path = PathOf("utf8.safetensors");
        WriteRawBytes(path, bytes, new byte[8]);
        var e = RefusedToOpen(path);
        Assert.True(e.Message.Contains("not valid UTF-8"), $"{where}: {e.Message}");
        Assert.Contains($"offset {Array.IndexOf(bytes, (byte)0xFF)}", e.Message);
    }

    [Theory]
    [InlineData("tensor name", """{"w\ud800": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""")]
    [InlineData("metadata key", """{"__metadata__": {"\udc00": "v"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""")]
    [InlineData("metadata value", """{"__metadata__": {"k": "v\ud800"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""")]
    [InlineData("dtype", """{"w": {"dtype": "F32\udfff", "shape": [2], "data_offsets": [0, 8]}}""")]
    public void Lone_surrogate_escapes_are_refused_as_corrupt(string where, string header)
    {
        string path = PathOf("surrogate.safetensors");
        WriteRaw(path, header, new byte[8]);
        var e = RefusedToOpen(path);
        Assert.True(e.Message.Contains("not valid Unicode"), $"{where}: {e.Message}");
    }

    private static void WriteRawBytes(string path, byte[] header, byte[] data)
    {
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((ulong)header.Length));
        stream.Write(header);
        stream.Write(data);
    }

    // ---- limits -------------------------------------------------------------------------------------------------

    [Fact]
    public void Header_length_over_the_limit_is_refused_as_such_in_a_small_file()
    {
        string path = PathOf("huge.safetensors");
        WriteRaw(path, """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", new byte[8], declaredLength: 200_000_000);
        var e = RefusedToOpen(path);
        Assert.Contains("header length 200000000", e.Message);
        Assert.Contains($"limit of {SafeTensorsFile.MaxHeaderBytes} bytes", e.Message);

        WriteRaw(path, """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", new byte[8], declaredLength: SafeTensorsFile.MaxHeaderBytes);
        Assert.Contains("bytes after it", RefusedToOpen(path).Message); // at the limit: only too long for this file
    }

    [Fact]
    public void Shape_whose_element_count_overflows_is_refused_naming_the_tensor()
    {
        string path = PathOf("shape.safetensors");
        WriteRaw(path, """{"big": {"dtype": "F32", "shape": [2147483647, 2147483647, 2147483647], "data_offsets": [0, 8]}}""", new byte[8]);
        var e = RefusedToOpen(path);
        Assert.Contains("'big'", e.Message);
        Assert.Contains("is too large", e.Message);

        // A zero anywhere makes the tensor empty, however large the other dimensions.
        WriteRaw(path, """{"empty": {"dtype": "F32", "shape": [2147483647, 2147483647, 2147483647, 0], "data_offsets": [0, 0]}}""", []);
        using var file = SafeTensorsFile.Read(path);
        Assert.Equal(0, file.Info("empty").ByteLength);
    }

    // ---- checksums ----------------------------------------------------------------------------------------------

    [Fact]
    public void Flipped_byte_in_a_saved_model_is_refused_naming_the_tensor()
    {
        string folder = PathOf("model");
        var parameters = RandomMicro(11);
        Checkpoint.SaveModel(folder, new HfConfig(DecoderConfig.Micro, "byte"), parameters);
        string weights = Path.Combine(folder, Checkpoint.ModelFile);
        AssertBitsEqual(Download(parameters.Arenas.Single().Values), Download(Checkpoint.LoadModel(folder, _cpu).Parameters.Arenas.Single().Values));

        var (tensor, offset) = MiddleOf(weights);
        FlipByte(weights, offset);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadModel(folder, _cpu));
        Assert.Contains(weights, e.Message);
        Assert.Contains($"tensor '{tensor}'", e.Message);
        Assert.Contains("checksum mismatch", e.Message);
        Assert.Contains("the file is corrupt", e.Message);
    }

    [Fact]
    public void Flipped_byte_in_a_file_without_checksums_still_loads()
    {
        string folder = PathOf("foreign");
        var parameters = RandomMicro(12);
        new HfConfig(DecoderConfig.Micro, null).Save(Path.Combine(folder, Checkpoint.ConfigFile));
        string weights = Path.Combine(folder, Checkpoint.ModelFile);
        WriteWithoutChecksums(weights, parameters, _cpu);
        using (var file = SafeTensorsFile.Read(weights)) Assert.Empty(file.Checksums);

        var (tensor, offset) = MiddleOf(weights);
        FlipByte(weights, offset);
        var loaded = Checkpoint.LoadModel(folder, _cpu);
        var expected = Download(parameters[tensor].Value);
        var actual = Download(loaded.Parameters[tensor].Value);
        using (var file = SafeTensorsFile.Read(weights))
        {
            long element = (offset - file.DataStart - file.Info(tensor).Begin) / 4;
            // Exactly the flipped element differs: the file was read as it is, unchecked.
            Assert.NotEqual(BitConverter.SingleToUInt32Bits(expected[element]), BitConverter.SingleToUInt32Bits(actual[element]));
            actual[element] = expected[element];
        }
        AssertBitsEqual(expected, actual);
    }

    [Fact]
    public void Every_read_method_verifies_the_checksum()
    {
        string path = PathOf("kinds.safetensors");
        SafeTensorsWriter.Write(path,
        [
            SafeTensorsEntry.FromArray<float>("f32", [64], NastyFloats(64, 5)),
            SafeTensorsEntry.FromArray<Half>("f16", [64], Enumerable.Range(0, 64).Select(i => (Half)i).ToArray()),
            SafeTensorsEntry.FromBytes("bf16", DType.BF16, [64], Enumerable.Range(0, 128).Select(i => (byte)i).ToArray()),
            SafeTensorsEntry.FromArray<double>("f64", [64], Enumerable.Range(0, 64).Select(i => i / 3.0).ToArray()),
            SafeTensorsEntry.FromArray<int>("i32", [64], Enumerable.Range(0, 64).ToArray()),
        ]);
        var reads = new (string Tensor, Action<SafeTensorsFile> Read)[]
        {
            ("f32", f => f.ReadFloat("f32", new float[64])),
            ("f32", f => f.ReadBytes("f32", new byte[256])),
            ("f32", f => f.ReadDouble("f32", new double[64])),
            ("f16", f => f.ReadFloat("f16", new float[64])),
            ("bf16", f => f.ReadFloat("bf16", new float[64])),
            ("bf16", f => f.ReadDouble("bf16", new double[64])),
            ("f64", f => f.ReadDouble("f64", new double[64])),
            ("f64", f => f.ReadFloat("f64", new float[64])),
            ("i32", f => f.ReadInt32("i32", new int[64])),
        };
        using (var file = SafeTensorsFile.Read(path))
        {
            Assert.Equal(file.Names.Order(), file.Checksums.Keys.Order());
            foreach (var (_, read) in reads) read(file); // intact: every read passes
        }
        foreach (string tensor in reads.Select(r => r.Tensor).Distinct())
        {
            long offset;
            using (var file = SafeTensorsFile.Read(path)) offset = file.DataStart + file.Info(tensor).Begin + file.Info(tensor).ByteLength / 2;
            FlipByte(path, offset);
            using (var file = SafeTensorsFile.Read(path))
                foreach (var (_, read) in reads.Where(r => r.Tensor == tensor))
                {
                    var e = Assert.Throws<InvalidDataException>(() => read(file));
                    Assert.Contains($"{path}: tensor '{tensor}': checksum mismatch", e.Message);
                }
            FlipByte(path, offset); // restored, for the next tensor
        }
    }

    [Fact]
    public void Checksum_is_the_zlib_crc32_of_the_tensor_bytes()
    {
        // "123456789" is CRC-32's standard check input: its checksum is cbf43926 (zlib.crc32(b"123456789")).
        string path = PathOf("check.safetensors");
        const string tensor = "\"digits\": {\"dtype\": \"U8\", \"shape\": [9], \"data_offsets\": [0, 9]}";
        WriteRaw(path, "{\"__metadata__\": {\"llm.crc32.digits\": \"cbf43926\"}, " + tensor + "}", "123456789"u8.ToArray());
        using (var file = SafeTensorsFile.Read(path))
        {
            Assert.Equal(0xCBF43926u, file.Checksums["digits"]);
            Assert.Empty(file.Metadata);
            file.ReadBytes("digits", new byte[9]);
        }
        WriteRaw(path, "{\"__metadata__\": {\"llm.crc32.digits\": \"CBF43927\"}, " + tensor + "}", "123456789"u8.ToArray());
        using (var file = SafeTensorsFile.Read(path))
            Assert.Contains("recorded CRC-32 cbf43927, the data has cbf43926", Assert.Throws<InvalidDataException>(() => file.ReadBytes("digits", new byte[9])).Message);

        // What the writer records is the same function of the same bytes.
        var floats = NastyFloats(100, 8);
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromArray<float>("x", [100], floats)]);
        using (var file = SafeTensorsFile.Read(path))
            Assert.Equal(Crc32.HashToUInt32(System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan())), file.Checksums["x"]);
    }

    [Theory]
    [InlineData("0000000")]
    [InlineData("000000000")]
    [InlineData("cbf4392g")]
    [InlineData("-0000001")]
    [InlineData(" 0000000")]
    [InlineData("0x000000")]
    [InlineData("")]
    public void Malformed_checksum_is_refused(string value)
    {
        string path = PathOf("malformed.safetensors");
        WriteRaw(path, "{\"__metadata__\": {\"llm.crc32.w\": \"" + value + "\"}, \"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", new byte[8]);
        var e = RefusedToOpen(path);
        Assert.Contains($"'llm.crc32.w' = \"{value}\" is not a checksum", e.Message);
    }

    [Fact]
    public void Checksum_naming_no_tensor_is_refused()
    {
        string path = PathOf("ghost.safetensors");
        WriteRaw(path, """{"__metadata__": {"llm.crc32.ghost": "00000000"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", new byte[8]);
        var e = RefusedToOpen(path);
        Assert.Contains("'llm.crc32.ghost'", e.Message);
        Assert.Contains("tensor 'ghost', which the file does not hold", e.Message);
    }

    [Fact]
    public void Names_that_json_escapes_get_their_checksums_patched_in_the_right_place()
    {
        // Quotes, backslashes, control and non-ASCII characters change the key's length once escaped; the
        // placeholder offsets must follow.
        string path = PathOf("names.safetensors");
        string[] names = ["plain", "quote\"d", "back\\slash", "tab\tnew\nline", "ünïcödé ✓", "emoji 🙂"];
        var values = names.Select((_, i) => NastyFloats(10 + i, (ulong)i)).ToArray();
        SafeTensorsWriter.Write(path, names.Select((n, i) => SafeTensorsEntry.FromArray<float>(n, [values[i].Length], values[i])),
            new Dictionary<string, string> { ["format"] = "pt" });
        using var file = SafeTensorsFile.Read(path);
        Assert.Equal(names, file.Names);
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt" }, file.Metadata);
        for (int i = 0; i < names.Length; i++)
        {
            var back = new float[values[i].Length];
            file.ReadFloat(names[i], back);
            AssertBitsEqual(values[i], back);
            Assert.Equal(Crc32.HashToUInt32(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values[i].AsSpan())), file.Checksums[names[i]]);
        }
    }

    [Fact]
    public void Writer_refuses_metadata_keys_reserved_for_checksums()
    {
        string path = PathOf("reserved.safetensors");
        var e = Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path,
            [SafeTensorsEntry.FromArray<float>("x", [1], new float[1])], new Dictionary<string, string> { ["llm.crc32.x"] = "00000000" }));
        Assert.Contains("'llm.crc32.x' is reserved", e.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Training_state_is_checksummed_too()
    {
        var m = _cpu.Allocate(DType.F32, [300], "adam.m");
        var v = _cpu.Allocate(DType.F32, [300], "adam.v");
        _cpu.Upload<float>(NastyFloats(300, 1), m);
        _cpu.Upload<float>(NastyFloats(300, 2), v);
        string path = PathOf(Checkpoint.TrainingStateFile);
        new TrainingState(7, 7, 0, 1, 2, double.NaN, null, "{}") { Tensors = [m, v] }.Save(path);
        long offset;
        using (var file = SafeTensorsFile.Read(path))
        {
            Assert.Equal(["adam.m", "adam.v"], file.Checksums.Keys.Order());
            offset = file.DataStart + file.Info("adam.v").Begin + 600;
        }
        FlipByte(path, offset);
        var e = Assert.Throws<InvalidDataException>(() => TrainingState.ReadTensors(path, [_cpu.Allocate(DType.F32, [300], "adam.m"), _cpu.Allocate(DType.F32, [300], "adam.v")]));
        Assert.Contains($"tensor '{"adam.v"}': checksum mismatch", e.Message);
    }

    // ---- messages -----------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("step", "-1")]
    [InlineData("step", "abc")]
    [InlineData("rng_state", "18446744073709551616")]
    [InlineData("rng_state", "-5")]
    [InlineData("data_position", "1.5")]
    [InlineData("data_position", " 7")]
    public void Training_state_numbers_are_refused_without_type_names(string key, string value)
    {
        var metadata = new Dictionary<string, string> { ["step"] = "1", ["rng_state"] = "2", ["data_position"] = "3", ["trainer"] = "{}" };
        metadata[key] = value;
        string path = PathOf("state.safetensors");
        SafeTensorsWriter.Write(path,
            [SafeTensorsEntry.FromArray<float>("adam.m", [2], new float[2]), SafeTensorsEntry.FromArray<float>("adam.v", [2], new float[2])],
            metadata);
        var e = Assert.Throws<InvalidDataException>(() => TrainingState.Read(path));
        Assert.Contains($"metadata '{key}' = \"{value}\" is not a non-negative integer", e.Message);
        AssertNoDotNetText(e.Message);
    }

    [Fact]
    public void Programming_errors_are_reported_without_dotnet_names()
    {
        AssertNoDotNetText(Assert.Throws<ArgumentException>(() => SafeTensorsFile.BFloat16ToSingle(new ushort[3], new float[2])).Message);
        AssertNoDotNetText(Assert.Throws<ArgumentException>(() => SafeTensorsEntry.FromArray<long>("ids", [1], new long[1])).Message);
    }

    internal static void AssertNoDotNetText(string message)
    {
        foreach (string dotnet in new[] { "(Parameter '", "Actual value was", "Int64", "Int32", "UInt64", "Single", "Double", "System." })
            Assert.False(message.Contains(dotnet), $"message shows .NET's text '{dotnet}': {message}");
    }
}
