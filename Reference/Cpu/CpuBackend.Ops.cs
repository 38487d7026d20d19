using Llm.Tensors;

namespace Llm.Cpu;

/// <summary>
/// The IBackend ops of the Reference: each validates dtypes here and shapes through <see cref="OpShapes"/> (naming the
/// tensors at fault), then dispatches F64 to the scalar definition in double, and F32 to the fast path when
/// <see cref="FastPaths"/> is on, else to the same definition instantiated in float.
/// </summary>
public sealed partial class CpuBackend
{
    // ---- embedding -------------------------------------------------------------------------------------------------

    public void Embedding(Tensor ids, Tensor table, Tensor output)
    {
        const string op = "embedding";
        RequireI32(op, ids);
        RequireFloat(op, table, output);
        var (vocab, c) = OpShapes.Embedding(ids, table, output);
        EmbeddingKernel.CheckIds(Span<int>(ids), vocab, $"{op}: {ids.Describe()} into {table.Describe()}");
        if (output.Length == 0) return;  // no ids, or rows of no channels: nothing to copy
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
        RequireI32(op, ids);
        RequireFloat(op, dTable, dOutput);
        var (vocab, c) = OpShapes.EmbeddingBackward(dOutput, ids, dTable);
        EmbeddingKernel.CheckIds(Span<int>(ids), vocab, $"{op}: {ids.Describe()} into {dTable.Describe()}");
        if (dOutput.Length == 0) return;
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
        RequireFloat("layernorm", input, weight, bias, output, mean, rstd);
        if (OpShapes.LayerNorm(input, weight, bias, output, mean, rstd).Rows == 0) return;
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
        RequireFloat("layernorm backward", input, dOutput, weight, mean, rstd, dInput, dWeight, dBias);
        if (OpShapes.LayerNormBackward(dOutput, input, weight, mean, rstd, dInput, dWeight, dBias).Rows == 0) return;
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
        OpShapes.SameShape(op, input, output);
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
        OpShapes.SameShape(op, input, dOutput, dInput);
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
        OpShapes.SameShape(op, a, b, output);
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
        OpShapes.SameLength(op, source, destination); // a gradient may arrive under another view of the same shape
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
        RequireFloat("attention", qkv, output, probs);
        var (batch, time, _, _) = OpShapes.Attention(qkv, output, probs, heads);
        if (batch * time == 0) return;  // no sequences, or sequences of no tokens
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
        RequireFloat("attention backward", qkv, dOutput, probs, dQkv);
        var (batch, time, _, _) = OpShapes.AttentionBackward(dOutput, qkv, probs, dQkv, heads);
        if (batch * time == 0) return;
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

    // ---- cross-entropy ---------------------------------------------------------------------------------------------

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int ignoreIndex = -1)
    {
        const string op = "cross-entropy";
        RequireFloat(op, logits, probs, losses);
        RequireI32(op, targets);
        var (rows, vocab) = OpShapes.CrossEntropy(logits, targets, probs, losses);
        CrossEntropyKernel.CheckTargets(Span<int>(targets), vocab, ignoreIndex, $"{op}: {targets.Describe()} for {logits.Describe()}");
        if (rows == 0) return;
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
        var (rows, vocab) = OpShapes.CrossEntropyBackward(dLosses, probs, targets, dLogits);
        CrossEntropyKernel.CheckTargets(Span<int>(targets), vocab, ignoreIndex, $"{op}: {targets.Describe()} for {probs.Describe()}");
        if (rows == 0) return;
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
        RequireFloat("adamw", param, grad, m, v);
        OpShapes.AdamW(param, grad, m, v, hyper);
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
}
