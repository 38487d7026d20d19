using System.Buffers.Binary;
using System.Text;
using FsCheck.Xunit;
using Llm.Common;
using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.IO;

/// <summary>safetensors reader/writer, config.json, model folders and training state: exact round trips, real
/// Hugging Face layouts, and every malformed input refused with a message naming the file and the tensor.</summary>
public sealed class CheckpointTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-checkpoint-tests-" + Guid.NewGuid().ToString("N"));
    private readonly CpuBackend _cpu = new();

    public CheckpointTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    // ---- helpers ------------------------------------------------------------------------------------------------

    /// <summary>Floats with every kind of bit pattern: NaNs with payloads (quiet and signalling, both signs),
    /// denormals, ±0, ±∞, extremes, then random bits.</summary>
    internal static float[] NastyFloats(int n, ulong seed)
    {
        uint[] special =
        [
            0x7FC00000, 0x7FC00001, 0xFFC12345, 0x7F800001, 0xFFBFFFFF, // NaNs: quiet, payload, signalling
            0x00000001, 0x807FFFFF, 0x00400000,                         // denormals
            0x00000000, 0x80000000, 0x7F800000, 0xFF800000,             // ±0, ±∞
            0x7F7FFFFF, 0x00800000, 0x3F800000,                         // max, min normal, 1
        ];
        var rng = new Rng(seed);
        var values = new float[n];
        for (int i = 0; i < n; i++)
            values[i] = BitConverter.UInt32BitsToSingle(i < special.Length ? special[i] : (uint)rng.NextUInt64());
        return values;
    }

    internal static void AssertBitsEqual(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToUInt32Bits(expected[i]) != BitConverter.SingleToUInt32Bits(actual[i]))
                Assert.Fail($"element {i}: expected bits 0x{BitConverter.SingleToUInt32Bits(expected[i]):X8}, got 0x{BitConverter.SingleToUInt32Bits(actual[i]):X8}");
    }

    /// <summary>Micro's parameters (one arena) filled with <see cref="NastyFloats"/>.</summary>
    internal static ParameterSet RandomMicro(CpuBackend cpu, ulong seed, DecoderConfig? config = null)
    {
        var parameters = new ParameterSet(cpu, (config ?? DecoderConfig.Micro).ParameterSpecs());
        cpu.Upload<float>(NastyFloats((int)parameters.Count, seed), parameters.Arenas.Single().Values);
        return parameters;
    }

    internal static float[] Download(CpuBackend cpu, Tensor t)
    {
        var host = new float[t.Length];
        cpu.Download<float>(t, host);
        return host;
    }

    private ParameterSet RandomMicro(ulong seed, DecoderConfig? config = null) => RandomMicro(_cpu, seed, config);
    private float[] Download(Tensor t) => Download(_cpu, t);

    /// <summary>A hand-made file: declared header length (default: the real one), header text, data bytes.</summary>
    internal static void WriteRaw(string path, string header, byte[] data, ulong? declaredLength = null)
    {
        var headerBytes = Encoding.UTF8.GetBytes(header);
        using var stream = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, declaredLength ?? (ulong)headerBytes.Length);
        stream.Write(length);
        stream.Write(headerBytes);
        stream.Write(data);
    }

    private InvalidDataException RefusedToOpen(string path)
    {
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Read(path).Dispose());
        Assert.Contains(path, e.Message);
        return e;
    }

    /// <summary>Micro's weights with one tensor replaced (or dropped, when replacement is null) and extras appended.</summary>
    private string WeightsWith(string file, string name, SafeTensorsEntry? replacement, params SafeTensorsEntry[] extra)
    {
        var parameters = RandomMicro(7);
        var entries = parameters.All.Select(p => p.Name == name ? replacement : SafeTensorsEntry.FromTensor(p.Value, p.Name))
            .Where(e => e is not null).Select(e => e!).Concat(extra);
        string path = PathOf(file);
        SafeTensorsWriter.Write(path, entries);
        return path;
    }

    private void AssertNoTempFiles()
    {
        var leftovers = Directory.EnumerateFileSystemEntries(_dir, "*", SearchOption.AllDirectories)
            .Where(p => Path.GetFileName(p).Contains(".tmp")).ToList();
        Assert.True(leftovers.Count == 0, "temporary files left: " + string.Join(", ", leftovers));
    }

    // ---- safetensors round trips ----------------------------------------------------------------------------------

    [Fact]
    public void F32_F64_I32_round_trip_bit_exactly()
    {
        var floats = NastyFloats(1000, 1);
        var doubles = new double[] { double.NaN, BitConverter.Int64BitsToDouble(0x7FF0000000000001), -0.0, double.Epsilon, double.MaxValue, Math.PI };
        var ints = new[] { int.MinValue, -1, 0, 1, int.MaxValue };
        string path = PathOf("round.safetensors");
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode ✓" };
        SafeTensorsWriter.Write(path,
        [
            SafeTensorsEntry.FromArray<float>("a.floats", [10, 100], floats),
            SafeTensorsEntry.FromArray<double>("b.doubles", [2, 3], doubles),
            SafeTensorsEntry.FromArray<int>("c.ints", [5], ints),
            SafeTensorsEntry.FromArray<float>("d.empty", [0, 4], Array.Empty<float>()),
            SafeTensorsEntry.FromArray<float>("e.scalar", [], new[] { -0f }),
        ], metadata);

        using var file = SafeTensorsFile.Read(path);
        Assert.Equal(["a.floats", "b.doubles", "c.ints", "d.empty", "e.scalar"], file.Names);
        Assert.Equal(metadata, file.Metadata);
        Assert.Equal(0, file.DataStart % 8); // header padded to 8 bytes, as Hugging Face does
        Assert.Equal([10, 100], file.Info("a.floats").Shape);
        Assert.Equal(DType.F64, file.Info("b.doubles").DType);
        var f = new float[1000];
        file.ReadFloat("a.floats", f);
        AssertBitsEqual(floats, f);
        var d = new double[6];
        file.ReadDouble("b.doubles", d);
        Assert.Equal(doubles.Select(BitConverter.DoubleToInt64Bits), d.Select(BitConverter.DoubleToInt64Bits));
        var i = new int[5];
        file.ReadInt32("c.ints", i);
        Assert.Equal(ints, i);
        var s = new float[1];
        file.ReadFloat("e.scalar", s);
        AssertBitsEqual([-0f], s);
        file.ReadFloat("d.empty", Span<float>.Empty);
    }

    /// <summary>Bits drawn over the whole 32-bit range (FsCheck's int[] stays within ±100, all denormals): every
    /// sign, exponent (NaNs with payloads, infinities, denormals) and mantissa pattern.</summary>
    [Property(MaxTest = 40)]
    public void Any_float_bits_round_trip(int seed)
    {
        var rng = new Llm.Common.Rng((ulong)seed);
        var floats = new float[rng.NextInt(300)];
        for (int i = 0; i < floats.Length; i++) floats[i] = BitConverter.UInt32BitsToSingle((uint)rng.NextUInt64());
        string path = PathOf("prop.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromArray<float>("x", [floats.Length], floats)]);
        using var file = SafeTensorsFile.Read(path);
        var back = new float[floats.Length];
        file.ReadFloat("x", back);
        AssertBitsEqual(floats, back);
    }

    [Fact]
    public void F16_and_BF16_read_as_their_exact_float_values()
    {
        ushort[] f16 = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x8000, 0x3555, 0x0400];
        float[] f16Values = [1f, -2f, 65504f, MathF.Pow(2, -24), float.PositiveInfinity, -0f, 0.333251953125f, MathF.Pow(2, -14)];
        ushort[] bf16 = [0x3F80, 0x4049, 0xC2F7, 0x0001, 0xFF80, 0x8000];
        float[] bf16Values = [1f, 3.140625f, -123.5f, MathF.Pow(2, -133), float.NegativeInfinity, -0f];
        string path = PathOf("half.safetensors");
        SafeTensorsWriter.Write(path,
        [
            SafeTensorsEntry.FromBytes("f16", DType.F16, [f16.Length], f16.SelectMany(BitConverter.GetBytes).ToArray()),
            SafeTensorsEntry.FromBytes("bf16", DType.BF16, [2, 3], bf16.SelectMany(BitConverter.GetBytes).ToArray()),
            SafeTensorsEntry.FromArray<double>("f64", [2], new[] { 0.1, -1e300 }),
        ]);
        using var file = SafeTensorsFile.Read(path);
        Assert.Equal("F16", file.Info("f16").DTypeName);
        Assert.Equal("BF16", file.Info("bf16").DTypeName);
        var a = new float[f16.Length];
        file.ReadFloat("f16", a);
        AssertBitsEqual(f16Values, a);
        var b = new float[bf16.Length];
        file.ReadFloat("bf16", b);
        AssertBitsEqual(bf16Values, b);
        var nan = new float[1];
        SafeTensorsWriter.Write(PathOf("nan.safetensors"), [SafeTensorsEntry.FromBytes("n", DType.BF16, [1], new byte[] { 0xC1, 0x7F })]);
        using (var n = SafeTensorsFile.Read(PathOf("nan.safetensors"))) n.ReadFloat("n", nan);
        Assert.Equal(0x7FC10000u, BitConverter.SingleToUInt32Bits(nan[0])); // NaN payload kept
        var c = new float[2];
        file.ReadFloat("f64", c);
        Assert.Equal([0.1f, float.NegativeInfinity], c); // F64 → float rounds (and overflows to ∞)
    }

    // ---- malformed files -----------------------------------------------------------------------------------------

    [Fact]
    public void Truncated_file_is_refused_naming_the_tensor()
    {
        string path = PathOf("trunc.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromArray<float>("first", [4], new float[4]), SafeTensorsEntry.FromArray<float>("last.weight", [8], new float[8])]);
        using (var s = new FileStream(path, FileMode.Open)) s.SetLength(s.Length - 5);
        var e = RefusedToOpen(path);
        Assert.Contains("'last.weight'", e.Message);
        Assert.Contains("truncated", e.Message);

        using (var s = new FileStream(path, FileMode.Open)) s.SetLength(5);
        Assert.Contains("too short", RefusedToOpen(path).Message);
    }

    [Fact]
    public void Corrupted_header_json_is_refused()
    {
        string path = PathOf("json.safetensors");
        WriteRaw(path, """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]""" + "}}}", new byte[8]);
        Assert.Contains("not valid JSON", RefusedToOpen(path).Message);
        WriteRaw(path, """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},}""", new byte[8]);
        Assert.Contains("not valid JSON", RefusedToOpen(path).Message);
        WriteRaw(path, """{"w": {"dtype": "F32", "shape": [2]}}""", new byte[8]);
        var e = RefusedToOpen(path);
        Assert.Contains("'w'", e.Message);
        Assert.Contains("data_offsets", e.Message);
        WriteRaw(path, """{"__metadata__": {"step": 5}}""", []);
        Assert.Contains("'step'", RefusedToOpen(path).Message);
        WriteRaw(path, """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", new byte[8]);
        Assert.Contains("'w' twice", RefusedToOpen(path).Message);
    }

    [Fact]
    public void Wrong_header_length_is_refused()
    {
        string path = PathOf("len.safetensors");
        string header = """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""";
        WriteRaw(path, header, new byte[8], declaredLength: 1_000_000);
        Assert.Contains("header length 1000000 exceeds", RefusedToOpen(path).Message);
        WriteRaw(path, header, new byte[8], declaredLength: (ulong)header.Length - 3);
        Assert.Contains("not valid JSON", RefusedToOpen(path).Message);
        WriteRaw(path, header, new byte[8], declaredLength: (ulong)header.Length + 4);
        Assert.Contains("not valid JSON", RefusedToOpen(path).Message);
        WriteRaw(path, "  " + header, new byte[8]);
        Assert.Contains("does not start with '{'", RefusedToOpen(path).Message);
    }

    [Fact]
    public void Bad_offsets_and_dtypes_are_refused_naming_the_tensor()
    {
        string path = PathOf("offsets.safetensors");
        WriteRaw(path, """{"a": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}}""", new byte[16]);
        var e = RefusedToOpen(path);
        Assert.Contains("'a'", e.Message);
        Assert.Contains("run past the end", e.Message);

        WriteRaw(path, """{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}""", new byte[24]);
        e = RefusedToOpen(path);
        Assert.Contains("'b'", e.Message);
        Assert.Contains("overlap tensor 'a'", e.Message);

        WriteRaw(path, """{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}""", new byte[16]);
        e = RefusedToOpen(path);
        Assert.Contains("'a'", e.Message);
        Assert.Contains("needs 12", e.Message);

        WriteRaw(path, """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}""", new byte[8]);
        Assert.Contains("end before they begin", RefusedToOpen(path).Message);

        WriteRaw(path, """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}""", new byte[16]);
        Assert.Contains("unused", RefusedToOpen(path).Message);

        WriteRaw(path, """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", new byte[12]);
        Assert.Contains("trailing bytes", RefusedToOpen(path).Message);

        WriteRaw(path, """{"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}""", new byte[8]);
        Assert.Contains("'a'", RefusedToOpen(path).Message);

        WriteRaw(path, """{"odd": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}""", new byte[8]);
        e = RefusedToOpen(path);
        Assert.Contains("'odd'", e.Message);
        Assert.Contains("unknown dtype \"F33\"", e.Message);

        // A dtype of the spec that we do not compute in: listed, but refused as float.
        WriteRaw(path, """{"mask": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}""", new byte[2]);
        using var file = SafeTensorsFile.Read(path);
        Assert.Null(file.Info("mask").DType);
        var read = Assert.Throws<InvalidDataException>(() => file.ReadFloat("mask", new float[2]));
        Assert.Contains("'mask'", read.Message);
        Assert.Contains("U8", read.Message);
    }

    // ---- atomic writes -------------------------------------------------------------------------------------------

    [Fact]
    public void Writes_leave_no_temporary_files_after_success_or_failure()
    {
        string path = PathOf("atomic.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromArray<float>("x", [2], new float[] { 1, 2 })]);
        long good = new FileInfo(path).Length;
        AssertNoTempFiles();

        // A callback that writes the wrong number of bytes: refused, the old file untouched, no temp file left.
        var bad = new SafeTensorsEntry("short", DType.F32, [4], stream => stream.Write(new byte[12]));
        var e = Assert.Throws<InvalidOperationException>(() => SafeTensorsWriter.Write(path, [bad]));
        Assert.Contains("'short'", e.Message);
        Assert.Equal(good, new FileInfo(path).Length);
        var throwing = new SafeTensorsEntry("boom", DType.F32, [4], _ => throw new IOException("disk full"));
        Assert.Throws<IOException>(() => SafeTensorsWriter.Write(PathOf("never.safetensors"), [throwing]));
        Assert.False(File.Exists(PathOf("never.safetensors")));
        AssertNoTempFiles();
        Assert.Equal(["atomic.safetensors"], Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName));
    }

    // ---- GPT-2 weights, config and folders ---------------------------------------------------------------------

    [Fact]
    public void Model_and_training_state_round_trip_bit_exactly()
    {
        var parameters = RandomMicro(42);
        var m = _cpu.Allocate(DType.F32, [(int)parameters.Count], "adam.m");
        var v = _cpu.Allocate(DType.F32, [3, 5], "adam.v.small");
        _cpu.Upload<float>(NastyFloats(m.Length, 3), m);
        _cpu.Upload<float>(NastyFloats(v.Length, 4), v);
        var state = new TrainingState(100, 97, 3, 0xFEDCBA9876543210UL, 1L << 40, 1.25, "ab12", """{"lr":0.0003,"batch":4}""") { Tensors = [m, v] };
        var config = new HfConfig(DecoderConfig.Micro, "byte");

        string run = PathOf("run");
        string step = Checkpoint.Save(run, 100, config, parameters, state);
        Assert.Equal(Path.Combine(Path.GetFullPath(run), "step_000100"), step);
        Assert.Equal(["config.json", "model.safetensors", "training_state.safetensors"],
            Directory.GetFiles(step).Select(Path.GetFileName).Order());
        Assert.Equal("step_000100", File.ReadAllText(Path.Combine(run, "latest")).Trim());
        AssertNoTempFiles();

        // The weights file looks like the hub's: bare names in spec order, format "pt".
        using (var file = SafeTensorsFile.Read(Path.Combine(step, Checkpoint.ModelFile)))
        {
            Assert.Equal(DecoderConfig.Micro.ParameterSpecs().Select(s => s.Name), file.Names);
            Assert.Equal("pt", file.Metadata["format"]);
        }

        var loaded = Checkpoint.LoadModel(run, _cpu);
        Assert.Equal(step, loaded.Folder);
        Assert.Equal(config, loaded.Config);
        AssertBitsEqual(Download(parameters.Arenas.Single().Values), Download(loaded.Parameters.Arenas.Single().Values));

        string statePath = Path.Combine(step, Checkpoint.TrainingStateFile);
        var m2 = _cpu.Allocate(DType.F32, [m.Length], "adam.m");
        var v2 = _cpu.Allocate(DType.F32, [3, 5], "adam.v.small");
        var back = TrainingState.Read(statePath);
        TrainingState.ReadTensors(statePath, [m2, v2]);
        Assert.Equal((100L, 97L, 3L, 0xFEDCBA9876543210UL, 1L << 40, 1.25, "ab12", state.TrainerJson),
            (back.Step, back.OptimizerStep, back.SkippedSteps, back.DataOrderState, back.DataPosition, back.ValidationLoss, back.DataSha256, back.TrainerJson));
        AssertBitsEqual(Download(m), Download(m2));
        AssertBitsEqual(Download(v), Download(v2));

        // Saving the same step again replaces the folder; tensors are found by name and shape.
        Checkpoint.Save(run, 100, config, RandomMicro(43), state);
        AssertNoTempFiles();
        var wrong = Assert.Throws<InvalidDataException>(() => TrainingState.ReadTensors(statePath, [_cpu.Allocate(DType.F32, [10], "adam.m")]));
        Assert.Contains("'adam.m'", wrong.Message);
        Assert.Contains("[10]", wrong.Message);
        var missing = Assert.Throws<InvalidDataException>(() => TrainingState.ReadTensors(statePath, [_cpu.Allocate(DType.F32, [10], "adam.m.h.0")]));
        Assert.Contains("missing tensor 'adam.m.h.0'", missing.Message);
    }

    [Fact]
    public void Failed_checkpoint_leaves_no_step_folder_and_keeps_latest()
    {
        var parameters = RandomMicro(1);
        var config = new HfConfig(DecoderConfig.Micro, "byte");
        string run = PathOf("run");
        Checkpoint.Save(run, 1, config, parameters);
        var unnamed = new TrainingState(2, 2, 0, 0, 0, double.NaN, null, "{}") { Tensors = [_cpu.Allocate(DType.F32, [5])] };
        var e = Assert.Throws<ArgumentException>(() => Checkpoint.Save(run, 2, config, parameters, unnamed));
        Assert.Contains("needs a name", e.Message);
        Assert.Equal(["latest", "step_000001"], Directory.GetFileSystemEntries(run).Select(Path.GetFileName).Order());
        Assert.Equal("step_000001", File.ReadAllText(Path.Combine(run, "latest")).Trim());
        AssertNoTempFiles();
    }

    [Fact]
    public void Hugging_Face_style_file_loads()
    {
        // As GPT2LMHeadModel.save_pretrained writes it: "transformer." prefixes, causal-mask buffers, a tied lm_head,
        // half-precision weights; config.json without our tokenizer field and with fields we do not use.
        var config = DecoderConfig.Micro;
        var rng = new Rng(9);
        var expected = new Dictionary<string, float[]>();
        var entries = new List<SafeTensorsEntry>();
        int k = 0;
        foreach (var spec in config.ParameterSpecs())
        {
            int n = Tensor.ElementCount(spec.Shape);
            var values = Enumerable.Range(0, n).Select(_ => (float)(rng.NextInt(257) - 128) / 64).ToArray(); // 8 significant bits: exact in F16 and BF16
            expected[spec.Name] = values;
            var entry = (k++ % 3) switch
            {
                0 => SafeTensorsEntry.FromArray<Half>("transformer." + spec.Name, spec.Shape, values.Select(x => (Half)x).ToArray()),
                1 => SafeTensorsEntry.FromBytes("transformer." + spec.Name, DType.BF16, spec.Shape,
                        values.SelectMany(x => BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(x) >> 16))).ToArray()),
                _ => SafeTensorsEntry.FromArray<float>("transformer." + spec.Name, spec.Shape, values),
            };
            entries.Add(entry);
        }
        for (int l = 0; l < config.Layers; l++)
        {
            int T = config.ContextLength;
            entries.Add(SafeTensorsEntry.FromArray<float>($"transformer.h.{l}.attn.bias", [1, 1, T, T], new float[T * T]));
            entries.Add(SafeTensorsEntry.FromArray<float>($"transformer.h.{l}.attn.masked_bias", [], new[] { -1e4f }));
        }
        entries.Add(SafeTensorsEntry.FromArray<Half>("lm_head.weight", [config.VocabSize, config.Channels], new Half[config.VocabSize * config.Channels]));
        string folder = PathOf("hf");
        Directory.CreateDirectory(folder);
        SafeTensorsWriter.Write(Path.Combine(folder, "model.safetensors"), entries.AsEnumerable().Reverse(), new Dictionary<string, string> { ["format"] = "pt" });
        File.WriteAllText(Path.Combine(folder, "config.json"), """
            {
              "_name_or_path": "micro", "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
              "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
              "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 16,
              "n_embd": 16, "n_head": 2, "n_inner": null, "n_layer": 2, "n_positions": 16,
              "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
              "torch_dtype": "float16", "transformers_version": "4.44.0", "use_cache": true, "vocab_size": 256
            }
            """);

        var loaded = Checkpoint.LoadModel(Path.Combine(folder, "model.safetensors"), _cpu);
        Assert.Equal(config with { EmbeddingDropout = 0.1f, AttentionDropout = 0.1f }, loaded.Config.Model);   // the hub's dropouts, for training
        Assert.Null(loaded.Config.Tokenizer);
        foreach (var p in loaded.Parameters.All)
            AssertBitsEqual(expected[p.Name], Download(p.Value));

        // An untied output head is not silently dropped.
        entries[^1] = SafeTensorsEntry.FromArray<float>("lm_head.weight", [3, config.Channels], new float[3 * config.Channels]);
        SafeTensorsWriter.Write(Path.Combine(folder, "model.safetensors"), entries);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadModel(folder, _cpu));
        Assert.Contains("'lm_head.weight'", e.Message);
    }

    [Fact]
    public void Missing_misshapen_mistyped_and_unexpected_tensors_are_refused_by_name()
    {
        var target = new ParameterSet(_cpu, DecoderConfig.Micro.ParameterSpecs());

        string missing = WeightsWith("missing.safetensors", "ln_f.bias", null);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadWeights(missing, target));
        Assert.Contains(missing, e.Message);
        Assert.Contains("missing tensor 'ln_f.bias'", e.Message);

        string shape = WeightsWith("shape.safetensors", "h.1.mlp.c_fc.weight", SafeTensorsEntry.FromArray<float>("h.1.mlp.c_fc.weight", [64, 16], new float[1024]));
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadWeights(shape, target));
        Assert.Contains("'h.1.mlp.c_fc.weight' has shape [64, 16]", e.Message);
        Assert.Contains("[16, 64]", e.Message);

        string dtype = WeightsWith("dtype.safetensors", "ln_f.weight", SafeTensorsEntry.FromArray<int>("ln_f.weight", [16], new int[16]));
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadWeights(dtype, target));
        Assert.Contains("'ln_f.weight' has dtype I32", e.Message);

        string extra = WeightsWith("extra.safetensors", "", null, SafeTensorsEntry.FromArray<float>("h.0.attn.q_norm.weight", [16], new float[16]));
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadWeights(extra, target));
        Assert.Contains("unexpected tensor 'h.0.attn.q_norm.weight'", e.Message);

        string twice = WeightsWith("twice.safetensors", "", null, SafeTensorsEntry.FromArray<float>("transformer.ln_f.bias", [16], new float[16]));
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadWeights(twice, target));
        Assert.Contains("'ln_f.bias' appears twice", e.Message);
    }

    [Fact]
    public void Config_contradicting_the_tensors_is_refused_naming_both()
    {
        string folder = PathOf("model");
        Checkpoint.SaveModel(folder, new HfConfig(DecoderConfig.Micro, "byte"), RandomMicro(5));
        string configPath = Path.Combine(folder, "config.json");
        string original = File.ReadAllText(configPath);

        File.WriteAllText(configPath, original.Replace("\"n_embd\": 16", "\"n_embd\": 32"));
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadModel(folder, _cpu));
        Assert.Contains("n_embd 32", e.Message);
        Assert.Contains("wte.weight [256, 16]", e.Message);
        Assert.Contains(configPath, e.Message);

        File.WriteAllText(configPath, original.Replace("\"n_layer\": 2", "\"n_layer\": 3"));
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadModel(folder, _cpu));
        Assert.Contains("n_layer 3", e.Message);
        Assert.Contains("h.0 .. h.1", e.Message);

        File.WriteAllText(configPath, original.Replace("\"n_head\": 2,", ""));
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadModel(folder, _cpu));
        Assert.Contains("missing required field \"n_head\"", e.Message);

        File.WriteAllText(configPath, original.Replace("\"n_head\": 2", "\"n_head\": 3"));
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadModel(folder, _cpu));
        Assert.Contains("n_head (3)", e.Message);

        File.WriteAllText(configPath, original.Replace("\"gelu_new\"", "\"relu\""));
        Assert.Contains("relu", Assert.Throws<InvalidDataException>(() => Checkpoint.LoadModel(folder, _cpu)).Message);
    }

    [Fact]
    public void Config_json_round_trips_in_hugging_face_form()
    {
        foreach (var config in new[] { new HfConfig(DecoderConfig.Gpt2, "gpt2"), new HfConfig(DecoderConfig.Tiny, "byte"), new HfConfig(DecoderConfig.Micro, null) })
        {
            string json = config.ToJson();
            Assert.Equal(config, HfConfig.Parse(json, "test"));
            Assert.Contains("\"model_type\": \"gpt2\"", json);
            Assert.Contains("\"GPT2LMHeadModel\"", json);
            Assert.Contains("\"activation_function\": \"gelu_new\"", json);
            Assert.Contains("\"layer_norm_epsilon\": 1E-05", json);
            Assert.Equal(config.Model.VocabSize > 50256, json.Contains("\"eos_token_id\": 50256"));
        }
        Assert.Contains("\"llm_tokenizer\": \"byte\"", new HfConfig(DecoderConfig.Tiny, "byte").ToJson());
        var e = Assert.Throws<InvalidDataException>(() => HfConfig.Parse("{\"n_embd\": 16,", "cfg.json"));
        Assert.Contains("cfg.json", e.Message);
    }

    [Fact]
    public void ResolveModelFolder_accepts_step_run_and_download_folders()
    {
        var config = new HfConfig(DecoderConfig.Micro, "byte");
        var parameters = RandomMicro(2);
        string run = PathOf("run");
        string s2 = Checkpoint.Save(run, 2, config, parameters);
        string s10 = Checkpoint.Save(run, 10, config, parameters);
        string s5 = Checkpoint.Save(run, 5, config, parameters); // latest names the last one written

        Assert.Equal(s5, Checkpoint.ResolveModelFolder(run));
        Assert.Equal(s2, Checkpoint.ResolveModelFolder(s2));
        Assert.Equal(s10, Checkpoint.ResolveModelFolder(Path.Combine(s10, "model.safetensors")));

        File.Delete(Path.Combine(run, "latest"));
        Directory.CreateDirectory(Path.Combine(run, "step_000020.tmp")); // an interrupted save does not count
        Directory.CreateDirectory(Path.Combine(run, "step_000030"));      // nor a folder without weights
        Assert.Equal(s10, Checkpoint.ResolveModelFolder(run));

        File.WriteAllText(Path.Combine(run, "latest"), "step_000099\n");
        Assert.Contains("step_000099", Assert.Throws<FileNotFoundException>(() => Checkpoint.ResolveModelFolder(run)).Message);
        File.WriteAllText(Path.Combine(run, "latest"), "../elsewhere");
        Assert.Throws<InvalidDataException>(() => Checkpoint.ResolveModelFolder(run));

        string download = PathOf("gpt2-download");
        Checkpoint.SaveModel(download, config, parameters);
        Assert.Equal(Path.GetFullPath(download), Checkpoint.ResolveModelFolder(download));
        File.Delete(Path.Combine(download, "config.json"));
        Assert.Contains("config.json", Assert.Throws<FileNotFoundException>(() => Checkpoint.ResolveModelFolder(download)).Message);

        string empty = PathOf("empty");
        Directory.CreateDirectory(empty);
        Assert.Throws<FileNotFoundException>(() => Checkpoint.ResolveModelFolder(empty));
        Assert.Throws<DirectoryNotFoundException>(() => Checkpoint.ResolveModelFolder(PathOf("nowhere")));
    }
}
