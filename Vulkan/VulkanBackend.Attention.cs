using Llm.Tensors;

namespace Llm.Vulkan;

// Shapes: query/output [B, Tq, NH, hs], key/value [B, Tk, NKV, hs], scoreBias [NH, Tq, Tk], rowMax/rowSum [B, NH, Tq].

/// <summary>
/// Attention in the FlashAttention manner, as Reference/Cpu/Attention.cs defines it: no T×T tensor is stored.
/// Forward is Shaders/attention.comp (online softmax over staged key/value tiles, one invocation per query row).
/// Backward recomputes p = e^(s − rowMax)/rowSum in two kernels whose every gradient element has one writer (no atomics,
/// deterministic): Shaders/attention_back.comp per query row (dQ, and dScoreBias with the batches looped inside),
/// Shaders/attention_back_kv.comp per key row (dK, dV, the query heads of its kv group looped inside).
/// Lavapipe's loop cap is met by running the key (or query) loop as several dispatches whose ranges the budget allows
/// (<see cref="AttentionTiles"/>); the forward carries m, l and the unnormalized output between them. The binding limit
/// is met by dispatching over whole batches and, with a score bias, groups of heads (<see cref="AttentionSlices"/>).
/// Dropout on the probabilities stores nothing either: every kernel recomputes keep from its Philox counter (Shaders/random.glsl).
/// </summary>
public sealed partial class VulkanBackend
{
    /// <summary>Invocations per attention workgroup = most rows of a staged tile (MAX_TILE_ROWS in attention_mask.glsl).</summary>
    private const uint AttentionWorkgroupSize = 64;
    /// <summary>Floats of one staged tile (TILE_FLOATS): two tiles of 8 KiB, within every device's 16 KiB minimum.</summary>
    private const int AttentionTileFloats = 2048;

    // Shaders/attention_mask.glsl: mode bits 0–7; bits 8–31 hold the dropout threshold
    private const uint HasBias = 16, HasSegments = 32, HasAlibi = 64, HasDBias = 128;
    /// <summary>The widths of the packed fields of the push constants: heads and the batch and head ranges in 16 bits,
    /// tiles per dispatch in 13 (more tiles are more dispatches).</summary>
    private const int MaxAttentionHeads = 0xffff, MaxAttentionTiles = 0x1fff;

    private readonly record struct AttentionPush(uint Tq, uint Tk, uint Heads, uint FirstHead, float Scale,
        uint QueryOffset, uint Window, uint Stride, uint Summary, uint Mode, uint Begin, uint Tiling,
        float DropScale, uint SeedLo, uint SeedHi, uint BaseLo, uint BaseHi)
    {
        /// <summary>The dispatch covering `tiles` tiles of `rows` rows from `begin` (forward, dQ: keys; dK, dV: queries).</summary>
        public AttentionPush Range(int begin, int hs, int rows, int tiles) =>
            this with { Begin = (uint)begin, Tiling = (uint)hs | (uint)rows << 12 | (uint)tiles << 19 };
    }

    /// <summary>The backward kernels' push constants: the common block and the batch (dQ) or head (dK, dV) range, From | To &lt;&lt; 16.</summary>
    private readonly record struct AttentionRangePush(AttentionPush Common, uint FromTo)
    {
        public AttentionRangePush(AttentionPush common, int from, int to) : this(common, (uint)from | (uint)to << 16) { }
    }

    private ReadOnlySpan<uint> AttentionSpecialization => [AttentionWorkgroupSize, 1, 1, (uint)AttentionTileFloats];

    /// <summary>
    /// Rows per staged tile and tiles per invocation within the loop budget. Lavapipe counts a loop's exit test as an
    /// iteration: a tile of n rows costs n·(3hs + 8) (two dots per row and the accumulate loop's inner steps) plus
    /// 2hs + n·hs/W + 16 to stage it and walk the dims; 3hs + 64 more are spent outside the tile loop. Dropout adds
    /// Philox's 10 rounds (and the exit test) per row.
    /// </summary>
    private (int Rows, int Tiles, long TileCost, long Overhead) AttentionTiles(string op, int headSize, int heads, bool dropout)
    {
        if (heads > MaxAttentionHeads) throw new NotSupportedException($"{op}: {heads} heads; the kernels pack head indices in 16 bits");
        long perRow = 3L * headSize + 8 + (dropout ? 11 : 0);
        long Tile(long n) => n * perRow + 2L * headSize + n * headSize / AttentionWorkgroupSize + 16;
        long overhead = 3L * headSize + 64;
        int rows = (int)Math.Min(AttentionWorkgroupSize, AttentionTileFloats / headSize);
        while (rows > 1 && Tile(rows) + overhead > Limits.PlannedIterations) rows--;
        if (rows < 1 || Tile(rows) + overhead > Limits.PlannedIterations)
            throw new NotSupportedException($"{op}: head size {headSize} needs more than a staged tile of {AttentionTileFloats} floats or the {Limits.LoopIterationBudget} loop iterations one invocation may run on '{Info.Name}'");
        return (rows, Math.Min(Limits.UnitsWithinBudget(Tile(rows), overhead), MaxAttentionTiles), Tile(rows), overhead);
    }

    /// <summary>The pieces (first batch, batches, first head, heads) whose tensors each fit one binding
    /// (<see cref="DispatchLimits.TensorBytes"/>): whole batches of q, k, v and the row statistics, and with a bias
    /// [NH, Tq, Tk] the heads whose rows of it fit. A single batch (or bias head) too large fails in Dispatch, naming it.</summary>
    private IEnumerable<(int B0, int NB, int H0, int NH)> AttentionSlices(AttentionShape n, bool bias)
    {
        int batches = Math.Clamp(Math.Min(RowsPerBinding(n.Tq * n.NH * n.HS), RowsPerBinding(n.Tk * n.NKV * n.HS)), 1, Math.Min(n.B, 0xffff));
        int heads = bias ? Math.Clamp(RowsPerBinding(n.Tq * n.Tk), 1, n.NH) : n.NH;
        for (int b0 = 0; b0 < n.B; b0 += batches)
            for (int h0 = 0; h0 < n.NH; h0 += heads)
                yield return (b0, Math.Min(batches, n.B - b0), h0, Math.Min(heads, n.NH - h0));
    }

    /// <summary>The eight inputs every attention kernel binds first (attention_mask.glsl), for one slice; an absent
    /// optional tensor is stood in for by the query slice, which the shader then never reads through that binding.</summary>
    private static Tensor[] AttentionInputs(AttentionShape n, (int B0, int NB, int H0, int NH) s, Tensor query, Tensor key, Tensor value,
        Tensor? scoreBias, AttentionMask mask)
    {
        var q = BatchSlice(query, s.B0, s.NB);
        return
        [
            q, BatchSlice(key, s.B0, s.NB), BatchSlice(value, s.B0, s.NB),
            scoreBias?.Slice(s.H0 * n.Tq * n.Tk, [s.NH, n.Tq, n.Tk]) ?? q,
            mask.PrefixLengths is { } prefix ? BatchSlice(prefix, s.B0, s.NB) : q,
            mask.QuerySegments is { } qs ? BatchSlice(qs, s.B0, s.NB) : q,
            mask.KeySegments is { } ks ? BatchSlice(ks, s.B0, s.NB) : q,
            mask.AlibiSlopes ?? q,
        ];
    }

    /// <summary>Batches [b0, b0 + nb) of a tensor whose first axis is the batch.</summary>
    private static Tensor BatchSlice(Tensor t, int b0, int nb)
    {
        int per = t.Shape[0] == 0 ? 0 : t.Length / t.Shape[0];
        return t.Slice(b0 * per, [nb, .. t.Shape[1..]]);
    }

    private static Tensor StatSlice(Tensor t, AttentionShape n, int b0, int nb) => t.Slice(b0 * n.NH * n.Tq, [nb, n.NH, n.Tq]);

    /// <summary>The common push constants of the slice whose first batch is b0 and first head firstHead.</summary>
    private static AttentionPush PushOf(AttentionShape n, AttentionMask mask, Tensor? scoreBias, int b0, int firstHead)
    {
        uint threshold = mask.Dropout > 0f ? Cpu.DropoutKernel.Threshold("attention", mask.Dropout, mask.DropoutOffset) : 0;
        uint mode = (uint)mask.Visibility | (uint)mask.Sparse << 2
            | (scoreBias is null ? 0 : HasBias) | (mask.QuerySegments is null ? 0 : HasSegments)
            | (mask.AlibiSlopes is null ? 0 : HasAlibi) | threshold << 8;
        ulong seed = mask.DropoutSeed, stream = (ulong)mask.DropoutOffset + (ulong)b0 * (ulong)n.NH * (ulong)n.Tq * (ulong)n.Tk;
        return new AttentionPush((uint)n.Tq, (uint)n.Tk, (uint)n.NH | (uint)n.NKV << 16, (uint)firstHead, mask.ScaleFor(n.HS),
            (uint)mask.QueryOffset, (uint)mask.Window, (uint)mask.Stride, (uint)mask.Summary, mode, 0, 0,
            (float)Cpu.DropoutKernel.Scale(mask.Dropout), (uint)seed, (uint)(seed >> 32), (uint)stream, (uint)(stream >> 32));
    }

    private static void RequireMaskTensors(string op, AttentionMask mask)
    {
        if (mask.AlibiSlopes is { } slopes) RequireF32(op, slopes);
    }

    private uint QueryBlocks(AttentionShape n) => (uint)((n.Tq + AttentionWorkgroupSize - 1) / AttentionWorkgroupSize);

    public void Attention(Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output, Tensor rowMax, Tensor rowSum)
    {
        const string op = "attention";
        RequireF32(op, query, key, value, output, rowMax, rowSum);
        if (scoreBias is not null) RequireF32(op, scoreBias);
        RequireMaskTensors(op, mask);
        var n = OpShapes.Attention(query, key, value, scoreBias, mask, output, rowMax, rowSum);
        if (rowMax.Length == 0) return;   // no sequences, queries or heads
        if (n.Tk == 0)   // no query sees a key
        {
            Fill(output, 0);
            Fill(rowMax, double.NegativeInfinity);
            Fill(rowSum, 0);
            return;
        }
        var (rows, tiles, _, _) = AttentionTiles(op, n.HS, n.NH, mask.Dropout > 0f);
        tiles = Math.Min(tiles, (n.Tk + rows - 1) / rows);   // tiles per dispatch; the first and the last dispatch are told by their range
        foreach (var s in AttentionSlices(n, scoreBias is not null))
        {
            var inputs = AttentionInputs(n, s, query, key, value, scoreBias, mask);
            var push = PushOf(n, mask, scoreBias, s.B0, s.H0);
            for (int k0 = 0; k0 < n.Tk; k0 += tiles * rows)
            {
                Dispatch("attention", QueryBlocks(n), (uint)s.NH, (uint)s.NB, push.Range(k0, n.HS, rows, tiles),
                    reads: inputs, writes: [BatchSlice(output, s.B0, s.NB), StatSlice(rowMax, n, s.B0, s.NB), StatSlice(rowSum, n, s.B0, s.NB)],
                    specialization: AttentionSpecialization);
            }
        }
    }

    public void AttentionBackward(Tensor dOutput, Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output,
        Tensor rowMax, Tensor rowSum, Tensor dQuery, Tensor dKey, Tensor dValue, Tensor? dScoreBias)
    {
        const string op = "attention backward";
        RequireF32(op, dOutput, query, key, value, output, rowMax, rowSum, dQuery, dKey, dValue);
        if (scoreBias is not null) RequireF32(op, scoreBias);
        if (dScoreBias is not null) RequireF32(op, dScoreBias);
        RequireMaskTensors(op, mask);
        var n = OpShapes.AttentionBackward(dOutput, query, key, value, scoreBias, mask, output, rowMax, rowSum, dQuery, dKey, dValue, dScoreBias);
        if (rowMax.Length == 0 || n.Tk == 0) return;   // nothing saw a key: every gradient is 0
        var (rows, tiles, tileCost, overhead) = AttentionTiles(op, n.HS, n.NH, mask.Dropout > 0f);
        bool biasGrad = dScoreBias is not null;
        foreach (var s in AttentionSlices(n, scoreBias is not null || biasGrad))
        {
            var inputs = AttentionInputs(n, s, query, key, value, scoreBias, mask);
            var push = PushOf(n, mask, scoreBias, s.B0, s.H0);
            push = push with { Mode = push.Mode | (biasGrad ? HasDBias : 0) };
            Tensor[] reads = [.. inputs, BatchSlice(output, s.B0, s.NB), StatSlice(rowMax, n, s.B0, s.NB), StatSlice(rowSum, n, s.B0, s.NB), BatchSlice(dOutput, s.B0, s.NB)];
            var dQ = BatchSlice(dQuery, s.B0, s.NB);
            var dBias = dScoreBias?.Slice(s.H0 * n.Tq * n.Tk, [s.NH, n.Tq, n.Tk]) ?? dQ;

            // dQ (and dScoreBias): keys in ranges of `tiles` tiles; with dScoreBias each invocation runs batches in order
            int keyTiles = (n.Tk + rows - 1) / rows;
            int keyRange = Math.Min(tiles, keyTiles) * rows;   // a multiple of rows: Range's tiles
            int batchesPer = biasGrad && tiles >= keyTiles ? Math.Clamp(Limits.UnitsWithinBudget(tileCost * keyTiles + overhead), 1, s.NB) : 1;
            for (int b0 = 0; b0 < s.NB; b0 += biasGrad ? batchesPer : s.NB)
                for (int k0 = 0; k0 < n.Tk; k0 += keyRange)
                {
                    var at = new AttentionRangePush(push.Range(k0, n.HS, rows, keyRange / rows), b0, biasGrad ? Math.Min(b0 + batchesPer, s.NB) : s.NB);
                    Dispatch("attention_back", QueryBlocks(n), (uint)s.NH, biasGrad ? 1u : (uint)s.NB, at, reads: reads, writes: [dQ, dBias],
                        specialization: AttentionSpecialization);
                }

            // dK, dV: queries in ranges of `tiles` tiles, the heads of the slice in chunks the budget allows
            int queryTiles = (n.Tq + rows - 1) / rows;
            int queryRange = Math.Min(tiles, queryTiles) * rows;
            int headsPer = tiles >= queryTiles ? Math.Clamp(Limits.UnitsWithinBudget(tileCost * queryTiles + overhead), 1, n.Group) : 1;
            Tensor[] kvWrites = [BatchSlice(dKey, s.B0, s.NB), BatchSlice(dValue, s.B0, s.NB)];
            uint keyBlocks = (uint)((n.Tk + AttentionWorkgroupSize - 1) / AttentionWorkgroupSize);
            for (int h0 = s.H0; h0 < s.H0 + s.NH; h0 += headsPer)
            {
                int h1 = Math.Min(h0 + headsPer, s.H0 + s.NH);
                uint kvHeads = (uint)((h1 - 1) / n.Group - h0 / n.Group + 1);
                for (int i0 = 0; i0 < n.Tq; i0 += queryRange)
                {
                    var at = new AttentionRangePush(push.Range(i0, n.HS, rows, queryRange / rows), h0, h1);
                    Dispatch("attention_back_kv", keyBlocks, kvHeads, (uint)s.NB, at, reads: reads, writes: kvWrites, specialization: AttentionSpecialization);
                }
            }
        }
    }
}
