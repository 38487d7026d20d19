// Shapes: B batch, T time, C channels, V vocab, NH heads, N rows (all leading axes flattened), P parameters.
namespace Llm.Tensors;

/// <summary>
/// The shape rules of the IBackend ops, shared by every backend so that each op accepts the same tensors and names the
/// one at fault in the same words (as <see cref="MatMulShapes"/> does for MatMul). Each op's validator checks shapes
/// only and returns the sizes the kernel needs; a backend checks its own dtypes and tensor ownership first, and its
/// index ranges (ids, targets) where its data lives. Messages start with the op's name: "layernorm: w [3] F32 must
/// have shape [4]". Zero-sized axes: no rows is valid (and no work); an axis the math cannot be empty along (C of
/// LayerNorm, RMSNorm and attention, V of the softmax) is refused here, for every backend alike.
/// </summary>
public static class OpShapes
{
    // ---- the ops -----------------------------------------------------------------------------------------------------

    /// <summary>ids [N] (or [B, T]), table [V, C], output [N, C] (or [B, T, C]).</summary>
    public static (int Vocab, int Channels) Embedding(Tensor ids, Tensor table, Tensor output) =>
        EmbeddingShapes("embedding", ids, table, output);

    /// <summary>dOutput [N, C], ids [N], dTable [V, C].</summary>
    public static (int Vocab, int Channels) EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable) =>
        EmbeddingShapes("embedding backward", ids, dTable, dOutput);

    private static (int Vocab, int Channels) EmbeddingShapes(string op, Tensor ids, Tensor table, Tensor rows)
    {
        RequireRank(op, table, 2);
        int vocab = table.Dim(0), c = table.Dim(1);
        RequireRows(op, rows, ids.Length, c);
        return (vocab, c);
    }

    /// <summary>input [N, C] (any leading axes), weight [C], bias [C], output like input, mean [N], rstd [N].</summary>
    public static (int Rows, int Channels) LayerNorm(Tensor input, Tensor weight, Tensor bias, Tensor output, Tensor mean, Tensor rstd) =>
        LayerNormShapes("layernorm", input, perChannel: [weight, bias], likeInput: [output], perRow: [mean, rstd]);

    /// <summary>dOutput and dInput like input [N, C], weight, dWeight and dBias [C] (either gradient may be null), mean and rstd [N].</summary>
    public static (int Rows, int Channels) LayerNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor mean, Tensor rstd,
        Tensor dInput, Tensor? dWeight, Tensor? dBias) =>
        LayerNormShapes("layernorm backward", input, perChannel: [weight, .. Present(dWeight, dBias)], likeInput: [dOutput, dInput], perRow: [mean, rstd]);

    private static (int Rows, int Channels) LayerNormShapes(string op, Tensor input, ReadOnlySpan<Tensor> perChannel,
        ReadOnlySpan<Tensor> likeInput, ReadOnlySpan<Tensor> perRow)
    {
        int c = input.Dim(-1), rows = input.Rows;
        if (c == 0) throw new ArgumentException($"{op}: {input.Describe()} has C = 0 channels: the mean and variance of no values are undefined");
        foreach (var t in perChannel) RequireShape(op, t, c);
        foreach (var t in likeInput) RequireSameShape(op, input, t);
        foreach (var t in perRow) RequireLength(op, t, rows);
        return (rows, c);
    }

    /// <summary>input [N, C] (any leading axes), weight [C], output like input, rstd [N].</summary>
    public static (int Rows, int Channels) RmsNorm(Tensor input, Tensor weight, Tensor output, Tensor rstd) =>
        RmsNormShapes("rmsnorm", input, perChannel: [weight], likeInput: [output], rstd);

    /// <summary>dOutput and dInput like input [N, C], weight and dWeight [C] (dWeight may be null), rstd [N].</summary>
    public static (int Rows, int Channels) RmsNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor rstd, Tensor dInput, Tensor? dWeight) =>
        RmsNormShapes("rmsnorm backward", input, perChannel: [weight, .. Present(dWeight)], likeInput: [dOutput, dInput], rstd);

    /// <summary>The tensors that are not null: the gradients a backward was asked for.</summary>
    public static Tensor[] Present(params Tensor?[] tensors) => [.. tensors.OfType<Tensor>()];

    private static (int Rows, int Channels) RmsNormShapes(string op, Tensor input, ReadOnlySpan<Tensor> perChannel,
        ReadOnlySpan<Tensor> likeInput, Tensor rstd)
    {
        int c = input.Dim(-1), rows = input.Rows;
        if (c == 0) throw new ArgumentException($"{op}: {input.Describe()} has C = 0 channels: the mean square of no values is undefined");
        foreach (var t in perChannel) RequireShape(op, t, c);
        foreach (var t in likeInput) RequireSameShape(op, input, t);
        RequireLength(op, rstd, rows);
        return (rows, c);
    }

    /// <summary>query and output [B, Tq, NH, hs], key and value [B, Tk, NKV, hs] with NH a multiple of NKV, scoreBias
    /// [NH, Tq, Tk] or null, rowMax and rowSum [B, NH, Tq]; the mask's tensors fit B, Tq, Tk and NH.</summary>
    public static AttentionShape Attention(Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask,
        Tensor output, Tensor rowMax, Tensor rowSum) =>
        AttentionShapes("attention", query, key, value, scoreBias, mask, output, rowMax, rowSum);

    /// <summary>input [B, T, H, hs], positions [B, T], output like input; rotaryDims even and ≤ hs.</summary>
    public static (int Tokens, int Heads, int HeadSize) Rope(Tensor input, Tensor positions, Tensor output, int rotaryDims) =>
        RopeShapes("rope", input, positions, output, rotaryDims);

    /// <summary>dOutput [B, T, H, hs], positions [B, T], dInput like dOutput.</summary>
    public static (int Tokens, int Heads, int HeadSize) RopeBackward(Tensor dOutput, Tensor positions, Tensor dInput, int rotaryDims) =>
        RopeShapes("rope backward", dOutput, positions, dInput, rotaryDims);

    private static (int Tokens, int Heads, int HeadSize) RopeShapes(string op, Tensor input, Tensor positions, Tensor output, int rotaryDims)
    {
        RequireRank(op, input, 4);
        int batch = input.Dim(0), time = input.Dim(1), heads = input.Dim(2), headSize = input.Dim(3);
        if (rotaryDims < 0 || rotaryDims % 2 != 0 || rotaryDims > headSize)
            throw new ArgumentException($"{op}: rotaryDims {rotaryDims} must be even and within the head size {headSize} of {input.Describe()}");
        RequireShape(op, positions, batch, time);
        RequireSameShape(op, input, output);
        return (batch * time, heads, headSize);
    }

    /// <summary>As <see cref="Attention"/> with dOutput like output, dQuery, dKey, dValue like their inputs and
    /// dScoreBias like scoreBias (null when the bias needs no gradient, or there is none).</summary>
    public static AttentionShape AttentionBackward(Tensor dOutput, Tensor query, Tensor key, Tensor value, Tensor? scoreBias,
        AttentionMask mask, Tensor output, Tensor rowMax, Tensor rowSum, Tensor dQuery, Tensor dKey, Tensor dValue, Tensor? dScoreBias)
    {
        const string op = "attention backward";
        var sizes = AttentionShapes(op, query, key, value, scoreBias, mask, output, rowMax, rowSum);
        RequireSameShape(op, output, dOutput);
        RequireSameShape(op, query, dQuery);
        RequireSameShape(op, key, dKey);
        RequireSameShape(op, value, dValue);
        if (dScoreBias is not null)
        {
            if (scoreBias is null) throw new ArgumentException($"{op}: dScoreBias {dScoreBias.Describe()} given without a scoreBias");
            RequireSameShape(op, scoreBias, dScoreBias);
        }
        return sizes;
    }

    private static AttentionShape AttentionShapes(string op, Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask,
        Tensor output, Tensor rowMax, Tensor rowSum)
    {
        RequireRank(op, query, 4);
        RequireRank(op, key, 4);
        int batch = query.Dim(0), queries = query.Dim(1), heads = query.Dim(2), hs = query.Dim(3), keys = key.Dim(1), kvHeads = key.Dim(2);
        if (hs == 0) throw new ArgumentException($"{op}: {query.Describe()} has head size 0: attention over vectors of no dimensions is undefined");
        if (key.Dim(0) != batch || key.Dim(3) != hs)
            throw new ArgumentException($"{op}: key {key.Describe()} must be [B = {batch}, Tk, NKV, hs = {hs}] for query {query.Describe()}");
        if (kvHeads == 0 || heads % kvHeads != 0)
            throw new ArgumentException($"{op}: the {heads} query heads of {query.Describe()} must be a multiple of the {kvHeads} key/value heads of {key.Describe()}");
        RequireSameShape(op, key, value);
        RequireSameShape(op, query, output);
        RequireShape(op, rowMax, batch, heads, queries);
        RequireShape(op, rowSum, batch, heads, queries);
        if (scoreBias is not null) RequireShape(op, scoreBias, heads, queries, keys);
        mask.Validate(op, batch, queries, keys, heads);
        return new AttentionShape(batch, queries, keys, heads, kvHeads, hs);
    }

    /// <summary>source [N, Cs] and destination [N, Cd] (any leading axes, the same rows), columns
    /// [sourceColumn, sourceColumn + width) of source and [destinationColumn, destinationColumn + width) of destination.</summary>
    public static (int Rows, int SourceColumns, int DestinationColumns) CopyColumns(Tensor source, int sourceColumn, Tensor destination,
        int destinationColumn, int width)
    {
        const string op = "copy columns";
        int rows = source.Rows, cs = source.Dim(-1), cd = destination.Dim(-1);
        if (destination.Rows != rows)
            throw new ArgumentException($"{op}: {source.Describe()} and {destination.Describe()} have different row counts ({rows} and {destination.Rows})");
        if (width < 0 || sourceColumn < 0 || destinationColumn < 0 || sourceColumn > cs - width || destinationColumn > cd - width)
            throw new ArgumentException($"{op}: columns [{sourceColumn}, {sourceColumn + width}) of {source.Describe()} into [{destinationColumn}, {destinationColumn + width}) of {destination.Describe()} do not fit");
        return (rows, cs, cd);
    }

    /// <summary>logits [N, V] (any leading axes), targets [N], probs like logits, losses [N].</summary>
    public static (int Rows, int Vocab) CrossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses) =>
        CrossEntropyShapes("cross-entropy", logits, probs, targets, losses);

    /// <summary>dLosses [N], probs [N, V], targets [N], dLogits like probs.</summary>
    public static (int Rows, int Vocab) CrossEntropyBackward(Tensor dLosses, Tensor probs, Tensor targets, Tensor dLogits) =>
        CrossEntropyShapes("cross-entropy backward", probs, dLogits, targets, dLosses);

    private static (int Rows, int Vocab) CrossEntropyShapes(string op, Tensor rowsByVocab, Tensor sameShape, Tensor targets, Tensor perRow)
    {
        int vocab = rowsByVocab.Dim(-1), rows = rowsByVocab.Rows;
        if (vocab == 0) throw new ArgumentException($"{op}: {rowsByVocab.Describe()} has V = 0 classes: a softmax over none is undefined");
        RequireSameShape(op, rowsByVocab, sameShape);
        RequireLength(op, targets, rows);
        RequireLength(op, perRow, rows);
        return (rows, vocab);
    }

    /// <summary>param, grad, m, v [P] each (any shapes of P elements); the step counts from 1.</summary>
    /// <returns>P.</returns>
    public static int AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWParameters hyper)
    {
        const string op = "adamw";
        int length = SameLength(op, param, grad, m, v);
        if (hyper.Step < 1)
            throw new ArgumentOutOfRangeException(nameof(hyper), $"{op} on {param.Describe()}: step is 1-based, got {hyper.Step}");
        return length;
    }

    /// <summary>table [NB, NH], buckets [Tq, Tk], output [NH, Tq, Tk]; NB ≥ 1 when there are positions to look up.</summary>
    public static (int Buckets, int Heads, int Tq, int Tk) RelativePositionBias(Tensor table, Tensor buckets, Tensor output) =>
        RelativePositionBiasShapes("relative position bias", table, buckets, output);

    /// <summary>dOutput [NH, Tq, Tk], buckets [Tq, Tk], dTable [NB, NH].</summary>
    public static (int Buckets, int Heads, int Tq, int Tk) RelativePositionBiasBackward(Tensor dOutput, Tensor buckets, Tensor dTable) =>
        RelativePositionBiasShapes("relative position bias backward", dTable, buckets, dOutput);

    private static (int Buckets, int Heads, int Tq, int Tk) RelativePositionBiasShapes(string op, Tensor table, Tensor buckets, Tensor output)
    {
        RequireRank(op, table, 2);
        RequireRank(op, buckets, 2);
        int nb = table.Dim(0), heads = table.Dim(1), tq = buckets.Dim(0), tk = buckets.Dim(1);
        RequireShape(op, output, heads, tq, tk);
        if (nb == 0 && buckets.Length > 0)
            throw new ArgumentException($"{op}: {table.Describe()} has no buckets for the {tq}×{tk} positions of {buckets.Describe()}");
        return (nb, heads, tq, tk);
    }

    // ---- the generic checks ------------------------------------------------------------------------------------------

    public static void RequireRank(string op, Tensor t, int rank)
    {
        if (t.Rank != rank) throw new ArgumentException($"{op}: {t.Describe()} must have rank {rank}");
    }

    public static void RequireShape(string op, Tensor t, params int[] shape)
    {
        if (!t.Shape.AsSpan().SequenceEqual(shape))
            throw new ArgumentException($"{op}: {t.Describe()} must have shape {Tensor.ShapeString(shape)}");
    }

    public static void RequireSameShape(string op, Tensor reference, Tensor t)
    {
        if (!t.Shape.AsSpan().SequenceEqual(reference.Shape))
            throw new ArgumentException($"{op}: {t.Describe()} must have the shape of {reference.Describe()}");
    }

    public static void RequireLength(string op, Tensor t, int length)
    {
        if (t.Length != length) throw new ArgumentException($"{op}: {t.Describe()} must have {length} elements");
    }

    public static void RequireSameLength(string op, Tensor reference, Tensor t)
    {
        if (t.Length != reference.Length)
            throw new ArgumentException($"{op}: {t.Describe()} must have as many elements as {reference.Describe()}");
    }

    /// <summary>t is [.., C] with <paramref name="rows"/> rows: ids [B, T] may feed output [B, T, C] or [N, C].</summary>
    public static void RequireRows(string op, Tensor t, int rows, int channels)
    {
        if (t.Rank < 1 || t.Dim(-1) != channels || t.Rows != rows)
            throw new ArgumentException($"{op}: {t.Describe()} must be [{rows}, {channels}] (one row of {channels} per id)");
    }

    /// <summary>Multiply's backward: dOutput, b and the gradients wanted (dA, dB, either may be null) all have a's shape.</summary>
    public static void MultiplyBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB)
    {
        const string op = "multiply backward";
        SameShape(op, a, b, dOutput);
        if (dA is not null) RequireSameShape(op, a, dA);
        if (dB is not null) RequireSameShape(op, b, dB);
    }

    /// <summary>Every tensor has the shape of <paramref name="reference"/> (an elementwise op read as written).</summary>
    public static void SameShape(string op, Tensor reference, params ReadOnlySpan<Tensor> others)
    {
        foreach (var t in others) RequireSameShape(op, reference, t);
    }

    /// <summary>Every tensor has as many elements as <paramref name="reference"/>, whatever its shape (an elementwise op
    /// on flat storage, or a gradient that arrives under another view).</summary>
    /// <returns>The element count.</returns>
    public static int SameLength(string op, Tensor reference, params ReadOnlySpan<Tensor> others)
    {
        foreach (var t in others) RequireSameLength(op, reference, t);
        return reference.Length;
    }

    // ---- softmax and mixture of experts --------------------------------------------------------------------------

    /// <summary>logits [N, E] (any leading axes), probs like logits, logSumExp [N]; E ≥ 1.</summary>
    public static (int Rows, int Width) Softmax(Tensor logits, Tensor probs, Tensor logSumExp)
    {
        const string op = "softmax";
        int width = logits.Rank == 0 ? 0 : logits.Dim(-1), rows = logits.Rows;
        if (logits.Rank == 0 || width == 0) throw new ArgumentException($"{op}: {logits.Describe()} has no classes on its last axis: a softmax over none is undefined");
        RequireSameShape(op, logits, probs);
        RequireLength(op, logSumExp, rows);
        return (rows, width);
    }

    /// <summary>dProbs like probs (or null), dLogSumExp [N] (or null), probs [N, E], dLogits like probs.</summary>
    public static (int Rows, int Width) SoftmaxBackward(Tensor? dProbs, Tensor? dLogSumExp, Tensor probs, Tensor dLogits)
    {
        const string op = "softmax backward";
        int width = probs.Rank == 0 ? 0 : probs.Dim(-1), rows = probs.Rows;
        if (probs.Rank == 0 || width == 0) throw new ArgumentException($"{op}: {probs.Describe()} has no classes on its last axis");
        RequireSameShape(op, probs, dLogits);
        if (dProbs is not null) RequireSameShape(op, probs, dProbs);
        if (dLogSumExp is not null) RequireLength(op, dLogSumExp, rows);
        return (rows, width);
    }

    /// <summary>probs [N, E]; experts, slots, gates [N, k] with 1 ≤ k ≤ E; load [E]; capacity ≥ 0 with E·capacity an int.</summary>
    public static (int Tokens, int Experts, int K) MoeRoute(Tensor probs, int capacity, Tensor experts, Tensor slots, Tensor gates, Tensor load)
    {
        const string op = "moe route";
        var (n, e, k) = RoutedShapes(op, probs, experts, gates);
        RequireShape(op, slots, n, k);
        RequireShape(op, load, e);
        if (capacity < 0 || (long)capacity * e > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"{op}: capacity {capacity} for {e} experts must be ≥ 0 with E·capacity ≤ {int.MaxValue}");
        return (n, e, k);
    }

    /// <summary>dGates [N, k], probs [N, E], experts [N, k], dProbs like probs.</summary>
    public static (int Tokens, int Experts, int K) MoeRouteBackward(Tensor dGates, Tensor probs, Tensor experts, Tensor dProbs)
    {
        const string op = "moe route backward";
        var shapes = RoutedShapes(op, probs, experts, dGates);
        RequireSameShape(op, probs, dProbs);
        return shapes;
    }

    private static (int Tokens, int Experts, int K) RoutedShapes(string op, Tensor probs, Tensor experts, Tensor perChoice)
    {
        RequireRank(op, probs, 2);
        RequireRank(op, experts, 2);
        int n = probs.Dim(0), e = probs.Dim(1), k = experts.Dim(1);
        if (e == 0) throw new ArgumentException($"{op}: {probs.Describe()} has no experts");
        if (k < 1 || k > e) throw new ArgumentException($"{op}: {experts.Describe()} chooses k = {k} of {e} experts; k must lie in [1, E]");
        RequireShape(op, experts, n, k);
        RequireShape(op, perChoice, n, k);
        return (n, e, k);
    }

    /// <summary>input [N, C] (any leading axes), slots [N, k], output [R, C] (e.g. [E, capacity, C]).</summary>
    /// <returns>N, k, R, C.</returns>
    public static (int Tokens, int K, int ExpertRows, int Channels) MoeDispatch(Tensor input, Tensor slots, Tensor output) =>
        TokensAndRows("moe dispatch", input, slots, output);

    /// <summary>dOutput [R, C], slots [N, k], dInput [N, C].</summary>
    public static (int Tokens, int K, int ExpertRows, int Channels) MoeDispatchBackward(Tensor dOutput, Tensor slots, Tensor dInput) =>
        TokensAndRows("moe dispatch backward", dInput, slots, dOutput);

    /// <summary>expertOutput [R, C], slots and gates [N, k], output [N, C].</summary>
    public static (int Tokens, int K, int ExpertRows, int Channels) MoeCombine(Tensor expertOutput, Tensor slots, Tensor gates, Tensor output)
    {
        var shapes = TokensAndRows("moe combine", output, slots, expertOutput);
        RequireSameShape("moe combine", slots, gates);
        return shapes;
    }

    /// <summary>dOutput [N, C], expertOutput [R, C], slots and gates [N, k], dExpertOutput like expertOutput, dGates like gates (either null).</summary>
    public static (int Tokens, int K, int ExpertRows, int Channels) MoeCombineBackward(Tensor dOutput, Tensor expertOutput, Tensor slots, Tensor gates,
        Tensor? dExpertOutput, Tensor? dGates)
    {
        const string op = "moe combine backward";
        var shapes = TokensAndRows(op, dOutput, slots, expertOutput);
        RequireSameShape(op, slots, gates);
        if (dExpertOutput is not null) RequireSameShape(op, expertOutput, dExpertOutput);
        if (dGates is not null) RequireSameShape(op, gates, dGates);
        return shapes;
    }

    private static (int Tokens, int K, int ExpertRows, int Channels) TokensAndRows(string op, Tensor tokens, Tensor slots, Tensor expertRows)
    {
        if (tokens.Rank < 1 || expertRows.Rank < 1) throw new ArgumentException($"{op}: {tokens.Describe()} and {expertRows.Describe()} need a channel axis");
        RequireRank(op, slots, 2);
        int c = tokens.Dim(-1), n = tokens.Rows, k = slots.Dim(1);
        if (slots.Dim(0) != n) throw new ArgumentException($"{op}: {slots.Describe()} must have one row per token of {tokens.Describe()} ({n})");
        if (expertRows.Dim(-1) != c) throw new ArgumentException($"{op}: {expertRows.Describe()} must have the {c} channels of {tokens.Describe()}");
        return (n, k, expertRows.Rows, c);
    }
}

/// <summary>The sizes of one attention call: B sequences, Tq queries, Tk keys, NH query heads, NKV key/value heads, hs per head.
/// Head h reads kv head h / Group (grouped-query; NKV = 1 is multi-query, NKV = NH multi-head).</summary>
public readonly record struct AttentionShape(int B, int Tq, int Tk, int NH, int NKV, int HS)
{
    public int Group => NH / NKV;
    public int Q(int b, int i, int h) => ((b * Tq + i) * NH + h) * HS;     // query[b, i, h, :] and output[b, i, h, :]
    public int K(int b, int k, int g) => ((b * Tk + k) * NKV + g) * HS;    // key[b, k, g, :] and value[b, k, g, :]
    public int Row(int b, int h, int i) => (b * NH + h) * Tq + i;         // rowMax[b, h, i], rowSum[b, h, i]
}
