using Llm.Tensors;

namespace Llm.Cpu;

/// <summary>
/// The IBackend ops of the Reference: each validates shapes and dtypes (naming the tensors at fault), then dispatches
/// F64 to the scalar definition in double, and F32 to the fast path when <see cref="FastPaths"/> is on, else to the
/// same definition instantiated in float.
/// </summary>
public sealed partial class CpuBackend
{
    // ---- embedding -------------------------------------------------------------------------------------------------

    public void Embedding(Tensor ids, Tensor table, Tensor output)
    {
        const string op = "embedding";
        RequireRank(op, table, 2);
        int vocab = table.Dim(0), c = table.Dim(1);
        RequireI32(op, ids);
        RequireFloat(op, table, output);
        RequireRows(op, output, ids.Length, c);
        EmbeddingKernel.CheckIds(Span<int>(ids), vocab, $"{op}: {ids.Describe()} into {table.Describe()}");
        switch (table.DType)
        {
            case DType.F64: EmbeddingKernel.Forward(Span<int>(ids), Span<double>(table), c, Span<double>(output)); break;
            default:
                if (FastPaths) EmbeddingKernel.ForwardFast(Span<int>(ids), Span<float>(table), c, Span<float>(output));
                else EmbeddingKernel.Forward(Span<int>(ids), Span<float>(table), c, Span<float>(output));
                break;
        }
    }

    public void EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable)
    {
        const string op = "embedding backward";
        RequireRank(op, dTable, 2);
        int vocab = dTable.Dim(0), c = dTable.Dim(1);
        RequireI32(op, ids);
        RequireFloat(op, dTable, dOutput);
        RequireRows(op, dOutput, ids.Length, c);
        EmbeddingKernel.CheckIds(Span<int>(ids), vocab, $"{op}: {ids.Describe()} into {dTable.Describe()}");
        switch (dTable.DType)
        {
            case DType.F64: EmbeddingKernel.Backward(Span<double>(dOutput), Span<int>(ids), c, Span<double>(dTable)); break;
            default:
                if (FastPaths) EmbeddingKernel.BackwardFast(Span<float>(dOutput), Span<int>(ids), c, Span<float>(dTable));
                else EmbeddingKernel.Backward(Span<float>(dOutput), Span<int>(ids), c, Span<float>(dTable));
                break;
        }
    }

    // ---- layernorm -------------------------------------------------------------------------------------------------

    public void LayerNorm(Tensor input, Tensor weight, Tensor bias, Tensor output, Tensor mean, Tensor rstd, float eps = 1e-5f)
    {
        const string op = "layernorm";
        RequireFloat(op, input, weight, bias, output, mean, rstd);
        int c = input.Dim(-1), rows = input.Rows;
        RequireShape(op, weight, c);
        RequireShape(op, bias, c);
        RequireSameShape(op, input, output);
        RequireLength(op, mean, rows);
        RequireLength(op, rstd, rows);
        switch (input.DType)
        {
            case DType.F64:
                LayerNormKernel.Forward(Span<double>(input), Span<double>(weight), Span<double>(bias), (double)eps,
                    Span<double>(output), Span<double>(mean), Span<double>(rstd));
                break;
            default:
                if (FastPaths) LayerNormKernel.ForwardFast(Span<float>(input), Span<float>(weight), Span<float>(bias), eps,
                    Span<float>(output), Span<float>(mean), Span<float>(rstd));
                else LayerNormKernel.Forward(Span<float>(input), Span<float>(weight), Span<float>(bias), eps,
                    Span<float>(output), Span<float>(mean), Span<float>(rstd));
                break;
        }
    }

    public void LayerNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor mean, Tensor rstd, Tensor dInput, Tensor dWeight, Tensor dBias)
    {
        const string op = "layernorm backward";
        RequireFloat(op, input, dOutput, weight, mean, rstd, dInput, dWeight, dBias);
        int c = input.Dim(-1), rows = input.Rows;
        RequireShape(op, weight, c);
        RequireShape(op, dWeight, c);
        RequireShape(op, dBias, c);
        RequireSameShape(op, input, dOutput);
        RequireSameShape(op, input, dInput);
        RequireLength(op, mean, rows);
        RequireLength(op, rstd, rows);
        switch (input.DType)
        {
            case DType.F64:
                LayerNormKernel.Backward(Span<double>(dOutput), Span<double>(input), Span<double>(weight), Span<double>(mean),
                    Span<double>(rstd), Span<double>(dInput), Span<double>(dWeight), Span<double>(dBias));
                break;
            default:
                if (FastPaths) LayerNormKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(weight), Span<float>(mean),
                    Span<float>(rstd), Span<float>(dInput), Span<float>(dWeight), Span<float>(dBias));
                else LayerNormKernel.Backward(Span<float>(dOutput), Span<float>(input), Span<float>(weight), Span<float>(mean),
                    Span<float>(rstd), Span<float>(dInput), Span<float>(dWeight), Span<float>(dBias));
                break;
        }
    }

    // ---- gelu ------------------------------------------------------------------------------------------------------

    public void Gelu(Tensor input, Tensor output)
    {
        const string op = "gelu";
        RequireFloat(op, input, output);
        RequireSameShape(op, input, output);
        switch (input.DType)
        {
            case DType.F64: GeluKernel.Forward(Span<double>(input), Span<double>(output)); break;
            default:
                if (FastPaths) GeluKernel.ForwardFast(Span<float>(input), Span<float>(output));
                else GeluKernel.Forward(Span<float>(input), Span<float>(output));
                break;
        }
    }

    public void GeluBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "gelu backward";
        RequireFloat(op, input, dOutput, dInput);
        RequireSameShape(op, input, dOutput);
        RequireSameShape(op, input, dInput);
        switch (input.DType)
        {
            case DType.F64: GeluKernel.Backward(Span<double>(dOutput), Span<double>(input), Span<double>(dInput)); break;
            default:
                if (FastPaths) GeluKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(dInput));
                else GeluKernel.Backward(Span<float>(dOutput), Span<float>(input), Span<float>(dInput));
                break;
        }
    }

    // ---- residual stream -------------------------------------------------------------------------------------------

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        const string op = "add";
        RequireFloat(op, a, b, output);
        RequireSameShape(op, a, b);
        RequireSameShape(op, a, output);
        switch (a.DType)
        {
            case DType.F64: ResidualKernel.Add(Span<double>(a), Span<double>(b), Span<double>(output)); break;
            default:
                if (FastPaths) ResidualKernel.AddFast(Span<float>(a), Span<float>(b), Span<float>(output));
                else ResidualKernel.Add(Span<float>(a), Span<float>(b), Span<float>(output));
                break;
        }
    }

    public void Accumulate(Tensor source, Tensor destination)
    {
        const string op = "accumulate";
        RequireFloat(op, destination, source);
        RequireSameLength(op, source, destination); // a gradient may arrive under another view of the same shape
        switch (destination.DType)
        {
            case DType.F64: ResidualKernel.Accumulate(Span<double>(source), Span<double>(destination)); break;
            default:
                if (FastPaths) ResidualKernel.AccumulateFast(Span<float>(source), Span<float>(destination));
                else ResidualKernel.Accumulate(Span<float>(source), Span<float>(destination));
                break;
        }
    }

    public void Scale(Tensor tensor, float factor)
    {
        RequireFloat("scale", tensor);
        switch (tensor.DType)
        {
            case DType.F64: ResidualKernel.Scale(Span<double>(tensor), (double)factor); break;
            default:
                if (FastPaths) ResidualKernel.ScaleFast(Span<float>(tensor), factor);
                else ResidualKernel.Scale(Span<float>(tensor), factor);
                break;
        }
    }

    public double SumOfSquares(Tensor tensor)
    {
        RequireFloat("sum of squares", tensor);
        return tensor.DType switch
        {
            DType.F64 => ResidualKernel.SumOfSquares<double>(Span<double>(tensor)),
            _ => FastPaths ? ResidualKernel.SumOfSquaresFast(Span<float>(tensor)) : ResidualKernel.SumOfSquares<float>(Span<float>(tensor)),
        };
    }

    // ---- attention -------------------------------------------------------------------------------------------------

    public void Attention(Tensor qkv, Tensor output, Tensor probs, int heads)
    {
        const string op = "attention";
        var (batch, time) = AttentionShapes(op, qkv, output, probs, heads);
        switch (qkv.DType)
        {
            case DType.F64: AttentionKernel.Forward(Span<double>(qkv), batch, time, heads, Span<double>(output), Span<double>(probs)); break;
            default:
                if (FastPaths) AttentionKernel.ForwardFast(Span<float>(qkv), batch, time, heads, Span<float>(output), Span<float>(probs));
                else AttentionKernel.Forward(Span<float>(qkv), batch, time, heads, Span<float>(output), Span<float>(probs));
                break;
        }
    }

    public void AttentionBackward(Tensor dOutput, Tensor qkv, Tensor probs, Tensor dQkv, int heads)
    {
        const string op = "attention backward";
        var (batch, time) = AttentionShapes(op, qkv, dOutput, probs, heads);
        RequireFloat(op, qkv, dQkv);
        RequireSameShape(op, qkv, dQkv);
        switch (qkv.DType)
        {
            case DType.F64:
                AttentionKernel.Backward(Span<double>(dOutput), Span<double>(qkv), Span<double>(probs), batch, time, heads, Span<double>(dQkv));
                break;
            default:
                if (FastPaths) AttentionKernel.BackwardFast(Span<float>(dOutput), Span<float>(qkv), Span<float>(probs), batch, time, heads, Span<float>(dQkv));
                else AttentionKernel.Backward(Span<float>(dOutput), Span<float>(qkv), Span<float>(probs), batch, time, heads, Span<float>(dQkv));
                break;
        }
    }

    /// <summary>qkv [B, T, 3C], output [B, T, C], probs [B, NH, T, T], C divisible by NH.</summary>
    private static (int Batch, int Time) AttentionShapes(string op, Tensor qkv, Tensor output, Tensor probs, int heads)
    {
        RequireFloat(op, qkv, output, probs);
        RequireRank(op, qkv, 3);
        int batch = qkv.Dim(0), time = qkv.Dim(1), c3 = qkv.Dim(2);
        if (c3 % 3 != 0)
            throw new ArgumentException($"{op}: last dimension of {qkv.Describe()} must be 3C (q, k, v side by side)");
        int c = c3 / 3;
        if (heads < 1 || c % heads != 0)
            throw new ArgumentException($"{op}: {heads} heads do not divide C = {c} of {qkv.Describe()}");
        RequireShape(op, output, batch, time, c);
        RequireShape(op, probs, batch, heads, time, time);
        return (batch, time);
    }

    // ---- cross-entropy ---------------------------------------------------------------------------------------------

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int ignoreIndex = -1)
    {
        const string op = "cross-entropy";
        RequireFloat(op, logits, probs, losses);
        RequireI32(op, targets);
        int vocab = logits.Dim(-1), rows = logits.Rows;
        RequireSameShape(op, logits, probs);
        RequireLength(op, targets, rows);
        RequireLength(op, losses, rows);
        CrossEntropyKernel.CheckTargets(Span<int>(targets), vocab, ignoreIndex, $"{op}: {targets.Describe()} for {logits.Describe()}");
        switch (logits.DType)
        {
            case DType.F64:
                CrossEntropyKernel.Forward(Span<double>(logits), Span<int>(targets), ignoreIndex, Span<double>(probs), Span<double>(losses));
                break;
            default:
                if (FastPaths) CrossEntropyKernel.ForwardFast(Span<float>(logits), Span<int>(targets), ignoreIndex, Span<float>(probs), Span<float>(losses));
                else CrossEntropyKernel.Forward(Span<float>(logits), Span<int>(targets), ignoreIndex, Span<float>(probs), Span<float>(losses));
                break;
        }
    }

    public void CrossEntropyBackward(Tensor dLosses, Tensor probs, Tensor targets, Tensor dLogits, int ignoreIndex = -1)
    {
        const string op = "cross-entropy backward";
        RequireFloat(op, probs, dLosses, dLogits);
        RequireI32(op, targets);
        int vocab = probs.Dim(-1), rows = probs.Rows;
        RequireSameShape(op, probs, dLogits);
        RequireLength(op, targets, rows);
        RequireLength(op, dLosses, rows);
        CrossEntropyKernel.CheckTargets(Span<int>(targets), vocab, ignoreIndex, $"{op}: {targets.Describe()} for {probs.Describe()}");
        switch (probs.DType)
        {
            case DType.F64:
                CrossEntropyKernel.Backward(Span<double>(dLosses), Span<double>(probs), Span<int>(targets), ignoreIndex, Span<double>(dLogits));
                break;
            default:
                if (FastPaths) CrossEntropyKernel.BackwardFast(Span<float>(dLosses), Span<float>(probs), Span<int>(targets), ignoreIndex, Span<float>(dLogits));
                else CrossEntropyKernel.Backward(Span<float>(dLosses), Span<float>(probs), Span<int>(targets), ignoreIndex, Span<float>(dLogits));
                break;
        }
    }

    // ---- optimizer -------------------------------------------------------------------------------------------------

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWParameters hyper)
    {
        const string op = "adamw";
        RequireFloat(op, param, grad, m, v);
        RequireSameLength(op, param, grad);
        RequireSameLength(op, param, m);
        RequireSameLength(op, param, v);
        if (hyper.Step < 1)
            throw new ArgumentOutOfRangeException(nameof(hyper), $"{op} on {param.Describe()}: step is 1-based, got {hyper.Step}");
        switch (param.DType)
        {
            case DType.F64: AdamWKernel.Update(Span<double>(param), Span<double>(grad), Span<double>(m), Span<double>(v), hyper); break;
            default:
                if (FastPaths) AdamWKernel.UpdateFast(Span<float>(param), Span<float>(grad), Span<float>(m), Span<float>(v), hyper);
                else AdamWKernel.Update(Span<float>(param), Span<float>(grad), Span<float>(m), Span<float>(v), hyper);
                break;
        }
    }

    // ---- validation ------------------------------------------------------------------------------------------------

    /// <summary>All tensors are CPU tensors of the first one's float dtype, which is F32 or F64.</summary>
    private static void RequireFloat(string op, Tensor first, params ReadOnlySpan<Tensor> rest)
    {
        RequireCpu(op, first);
        if (first.DType is not (DType.F32 or DType.F64))
            throw new ArgumentException($"{op}: {first.Describe()} must be F32 or F64 on the CPU backend");
        foreach (var t in rest)
        {
            RequireCpu(op, t);
            if (t.DType != first.DType)
                throw new ArgumentException($"{op}: {t.Describe()} does not match the dtype of {first.Describe()}");
        }
    }

    private static void RequireI32(string op, Tensor t)
    {
        RequireCpu(op, t);
        if (t.DType != DType.I32) throw new ArgumentException($"{op}: {t.Describe()} must be I32");
    }

    private static void RequireCpu(string op, Tensor t)
    {
        if (t.Backend is not CpuBackend)
            throw new ArgumentException($"{op}: {t.Describe()} belongs to backend '{t.Backend.Name}', not the CPU backend");
    }

    private static void RequireRank(string op, Tensor t, int rank)
    {
        if (t.Rank != rank) throw new ArgumentException($"{op}: {t.Describe()} must have rank {rank}");
    }

    private static void RequireShape(string op, Tensor t, params int[] shape)
    {
        if (!t.Shape.AsSpan().SequenceEqual(shape))
            throw new ArgumentException($"{op}: {t.Describe()} must have shape {Tensor.ShapeString(shape)}");
    }

    private static void RequireSameShape(string op, Tensor reference, Tensor t)
    {
        if (!t.Shape.AsSpan().SequenceEqual(reference.Shape))
            throw new ArgumentException($"{op}: {t.Describe()} must have the shape of {reference.Describe()}");
    }

    private static void RequireLength(string op, Tensor t, int length)
    {
        if (t.Length != length) throw new ArgumentException($"{op}: {t.Describe()} must have {length} elements");
    }

    private static void RequireSameLength(string op, Tensor reference, Tensor t)
    {
        if (t.Length != reference.Length)
            throw new ArgumentException($"{op}: {t.Describe()} must have as many elements as {reference.Describe()}");
    }

    /// <summary>t is [.., C] with <paramref name="rows"/> rows: ids [B, T] may feed output [B, T, C] or [N, C].</summary>
    private static void RequireRows(string op, Tensor t, int rows, int channels)
    {
        if (t.Rank < 1 || t.Dim(-1) != channels || t.Rows != rows)
            throw new ArgumentException($"{op}: {t.Describe()} must be [{rows}, {channels}] (one row of {channels} per id)");
    }
}
