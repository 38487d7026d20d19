using System.Numerics;
using Llm.Tensors;

namespace Llm.Cpu;

/// <summary>
/// The IBackend ops of the Reference: each validates dtypes here and shapes through <see cref="OpShapes"/> (naming the
/// tensors at fault), then calls <see cref="Dispatch"/> once: F64 runs the scalar definition in double, F32 the fast
/// path when <see cref="FastPaths"/> is on, else the same definition instantiated in float.
/// A new op writes its argument list twice: a local <c>void Definition&lt;T&gt;()</c> calling the generic kernel, and a
/// lambda calling its fast path (null if it has none). A generic local function cannot be passed open, hence
/// <c>Definition&lt;double&gt;, Definition&lt;float&gt;</c>; the few delegates per call are nothing beside an op's work.
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
        Dispatch(table, Definition<double>, Definition<float>,
            () => EmbeddingKernel.ForwardFast(Span<int>(ids), Span<float>(table), c, Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            EmbeddingKernel.Forward(Span<int>(ids), Span<T>(table), c, Span<T>(output));
    }

    public void EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable)
    {
        const string op = "embedding backward";
        RequireI32(op, ids);
        RequireFloat(op, dTable, dOutput);
        var (vocab, c) = OpShapes.EmbeddingBackward(dOutput, ids, dTable);
        EmbeddingKernel.CheckIds(Span<int>(ids), vocab, $"{op}: {ids.Describe()} into {dTable.Describe()}");
        if (dOutput.Length == 0) return;
        Dispatch(dTable, Definition<double>, Definition<float>,
            () => EmbeddingKernel.BackwardFast(Span<float>(dOutput), Span<int>(ids), c, Span<float>(dTable)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            EmbeddingKernel.Backward(Span<T>(dOutput), Span<int>(ids), c, Span<T>(dTable));
    }

    // ---- layernorm -------------------------------------------------------------------------------------------------

    public void LayerNorm(Tensor input, Tensor weight, Tensor bias, Tensor output, Tensor mean, Tensor rstd, float eps = 1e-5f)
    {
        RequireFloat("layernorm", input, weight, bias, output, mean, rstd);
        if (OpShapes.LayerNorm(input, weight, bias, output, mean, rstd).Rows == 0) return;
        Dispatch(input, Definition<double>, Definition<float>,
            () => LayerNormKernel.ForwardFast(Span<float>(input), Span<float>(weight), Span<float>(bias), eps,
                Span<float>(output), Span<float>(mean), Span<float>(rstd)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            LayerNormKernel.Forward(Span<T>(input), Span<T>(weight), Span<T>(bias),
                T.CreateChecked(eps), Span<T>(output), Span<T>(mean), Span<T>(rstd));
    }

    public void LayerNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor mean, Tensor rstd, Tensor dInput, Tensor? dWeight, Tensor? dBias)
    {
        RequireFloat("layernorm backward", input, [dOutput, weight, mean, rstd, dInput, .. OpShapes.Present(dWeight, dBias)]);
        if (OpShapes.LayerNormBackward(dOutput, input, weight, mean, rstd, dInput, dWeight, dBias).Rows == 0) return;
        Dispatch(input, Definition<double>, Definition<float>,
            () => LayerNormKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(weight), Span<float>(mean),
                Span<float>(rstd), Span<float>(dInput), SpanOrEmpty<float>(dWeight), SpanOrEmpty<float>(dBias)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            LayerNormKernel.Backward(Span<T>(dOutput), Span<T>(input), Span<T>(weight),
                Span<T>(mean), Span<T>(rstd), Span<T>(dInput), SpanOrEmpty<T>(dWeight), SpanOrEmpty<T>(dBias));
    }

    // ---- rmsnorm ---------------------------------------------------------------------------------------------------

    public void RmsNorm(Tensor input, Tensor weight, Tensor output, Tensor rstd, float eps = 1e-6f)
    {
        RequireFloat("rmsnorm", input, weight, output, rstd);
        if (OpShapes.RmsNorm(input, weight, output, rstd).Rows == 0) return;
        Dispatch(input, Definition<double>, Definition<float>,
            () => RmsNormKernel.ForwardFast(Span<float>(input), Span<float>(weight), eps, Span<float>(output), Span<float>(rstd)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            RmsNormKernel.Forward(Span<T>(input), Span<T>(weight), T.CreateChecked(eps), Span<T>(output), Span<T>(rstd));
    }

    public void RmsNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor rstd, Tensor dInput, Tensor? dWeight)
    {
        RequireFloat("rmsnorm backward", input, [dOutput, weight, rstd, dInput, .. OpShapes.Present(dWeight)]);
        if (OpShapes.RmsNormBackward(dOutput, input, weight, rstd, dInput, dWeight).Rows == 0) return;
        Dispatch(input, Definition<double>, Definition<float>,
            () => RmsNormKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(weight), Span<float>(rstd),
                Span<float>(dInput), SpanOrEmpty<float>(dWeight)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            RmsNormKernel.Backward(Span<T>(dOutput), Span<T>(input), Span<T>(weight), Span<T>(rstd), Span<T>(dInput), SpanOrEmpty<T>(dWeight));
    }

    // ---- gelu ------------------------------------------------------------------------------------------------------

    public void Gelu(Tensor input, Tensor output)
    {
        const string op = "gelu";
        RequireFloat(op, input, output);
        OpShapes.SameShape(op, input, output);
        Dispatch(input, Definition<double>, Definition<float>, () => GeluKernel.ForwardFast(Span<float>(input), Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            GeluKernel.Forward(Span<T>(input), Span<T>(output));
    }

    public void GeluBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "gelu backward";
        RequireFloat(op, input, dOutput, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        Dispatch(input, Definition<double>, Definition<float>,
            () => GeluKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(dInput)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            GeluKernel.Backward(Span<T>(dOutput), Span<T>(input), Span<T>(dInput));
    }

    // ---- sigmoid ---------------------------------------------------------------------------------------------------

    public void Sigmoid(Tensor input, Tensor output)
    {
        const string op = "sigmoid";
        RequireFloat(op, input, output);
        OpShapes.SameShape(op, input, output);
        Dispatch(input, Definition<double>, Definition<float>, () => SigmoidKernel.ForwardFast(Span<float>(input), Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> => SigmoidKernel.Forward(Span<T>(input), Span<T>(output));
    }

    public void SigmoidBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "sigmoid backward";
        RequireFloat(op, input, dOutput, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        Dispatch(input, Definition<double>, Definition<float>,
            () => SigmoidKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(dInput)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            SigmoidKernel.Backward(Span<T>(dOutput), Span<T>(input), Span<T>(dInput));
    }

    // ---- swish -----------------------------------------------------------------------------------------------------

    public void Swish(Tensor input, Tensor output, float beta = 1f)
    {
        const string op = "swish";
        RequireFloat(op, input, output);
        OpShapes.SameShape(op, input, output);
        Dispatch(input, Definition<double>, Definition<float>, () => SwishKernel.ForwardFast(Span<float>(input), Span<float>(output), beta));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            SwishKernel.Forward(Span<T>(input), Span<T>(output), T.CreateChecked(beta));
    }

    public void SwishBackward(Tensor dOutput, Tensor input, Tensor dInput, float beta = 1f)
    {
        const string op = "swish backward";
        RequireFloat(op, input, dOutput, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        Dispatch(input, Definition<double>, Definition<float>,
            () => SwishKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(dInput), beta));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            SwishKernel.Backward(Span<T>(dOutput), Span<T>(input), Span<T>(dInput), T.CreateChecked(beta));
    }

    // ---- relu ------------------------------------------------------------------------------------------------------

    public void Relu(Tensor input, Tensor output)
    {
        const string op = "relu";
        RequireFloat(op, input, output);
        OpShapes.SameShape(op, input, output);
        Dispatch(input, Definition<double>, Definition<float>, () => ReluKernel.ForwardFast(Span<float>(input), Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            ReluKernel.Forward(Span<T>(input), Span<T>(output));
    }

    public void ReluBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "relu backward";
        RequireFloat(op, input, dOutput, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        Dispatch(input, Definition<double>, Definition<float>,
            () => ReluKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(dInput)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            ReluKernel.Backward(Span<T>(dOutput), Span<T>(input), Span<T>(dInput));
    }

    // ---- exact gelu ------------------------------------------------------------------------------------------------

    public void GeluExact(Tensor input, Tensor output)
    {
        const string op = "gelu exact";
        RequireFloat(op, input, output);
        OpShapes.SameShape(op, input, output);
        Dispatch(input, Definition<double>, Definition<float>, () => GeluExactKernel.ForwardFast(Span<float>(input), Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            GeluExactKernel.Forward(Span<T>(input), Span<T>(output));
    }

    public void GeluExactBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "gelu exact backward";
        RequireFloat(op, input, dOutput, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        Dispatch(input, Definition<double>, Definition<float>,
            () => GeluExactKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(dInput)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            GeluExactKernel.Backward(Span<T>(dOutput), Span<T>(input), Span<T>(dInput));
    }

    // ---- multiply --------------------------------------------------------------------------------------------------

    public void Multiply(Tensor a, Tensor b, Tensor output)
    {
        const string op = "multiply";
        RequireFloat(op, a, b, output);
        OpShapes.SameShape(op, a, b, output);
        Dispatch(a, Definition<double>, Definition<float>,
            () => MultiplyKernel.ForwardFast(Span<float>(a), Span<float>(b), Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            MultiplyKernel.Forward(Span<T>(a), Span<T>(b), Span<T>(output));
    }

    public void MultiplyBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB)
    {
        const string op = "multiply backward";
        RequireFloat(op, a, b, dOutput);
        foreach (var gradient in (ReadOnlySpan<Tensor?>)[dA, dB]) if (gradient is not null) RequireFloat(op, a, gradient);
        OpShapes.MultiplyBackward(dOutput, a, b, dA, dB);
        foreach (var (gradient, other) in (ReadOnlySpan<(Tensor?, Tensor)>)[(dA, b), (dB, a)])  // dA += dOutput ⊙ b, dB += dOutput ⊙ a
        {
            if (gradient is null) continue;
            Dispatch(a, () => Definition<double>(gradient, other), () => Definition<float>(gradient, other),
                () => MultiplyKernel.BackwardFast(Span<float>(dOutput), Span<float>(other), Span<float>(gradient)));
        }

        void Definition<T>(Tensor gradient, Tensor other) where T : unmanaged, IFloatingPointIeee754<T> =>
            MultiplyKernel.Backward(Span<T>(dOutput), Span<T>(other), Span<T>(gradient));
    }

    // ---- dropout ---------------------------------------------------------------------------------------------------

    public void Dropout(Tensor input, Tensor output, float p, ulong seed, long offset)
    {
        const string op = "dropout";
        RequireFloat(op, input, output);
        OpShapes.SameShape(op, input, output);
        DropoutKernel.Threshold(op, p, offset);
        Dispatch(input, Definition<double>, Definition<float>,
            () => DropoutKernel.ForwardFast(Span<float>(input), Span<float>(output), p, seed, offset));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            DropoutKernel.Forward(Span<T>(input), Span<T>(output), p, seed, offset);
    }

    public void DropoutBackward(Tensor dOutput, Tensor dInput, float p, ulong seed, long offset)
    {
        const string op = "dropout backward";
        RequireFloat(op, dOutput, dInput);
        OpShapes.SameShape(op, dOutput, dInput);
        DropoutKernel.Threshold(op, p, offset);
        Dispatch(dOutput, Definition<double>, Definition<float>,
            () => DropoutKernel.BackwardFast(Span<float>(dOutput), Span<float>(dInput), p, seed, offset));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            DropoutKernel.Backward(Span<T>(dOutput), Span<T>(dInput), p, seed, offset);
    }

    // ---- rope ------------------------------------------------------------------------------------------------------

    public void Rope(Tensor input, Tensor positions, Tensor output, int rotaryDims, float theta = 10000f)
    {
        const string op = "rope";
        RequireFloat(op, input, output);
        RequireI32(op, positions);
        var (_, heads, headSize) = OpShapes.Rope(input, positions, output, rotaryDims);
        if (input.Length == 0) return;
        Dispatch(input, Definition<double>, Definition<float>,
            () => RopeKernel.ForwardFast(Span<float>(input), Span<int>(positions), heads, headSize, rotaryDims, theta, Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            RopeKernel.Forward(Span<T>(input), Span<int>(positions), heads, headSize, rotaryDims, T.CreateChecked(theta), Span<T>(output));
    }

    public void RopeBackward(Tensor dOutput, Tensor positions, Tensor dInput, int rotaryDims, float theta = 10000f)
    {
        const string op = "rope backward";
        RequireFloat(op, dOutput, dInput);
        RequireI32(op, positions);
        var (_, heads, headSize) = OpShapes.RopeBackward(dOutput, positions, dInput, rotaryDims);
        if (dOutput.Length == 0) return;
        Dispatch(dOutput, Definition<double>, Definition<float>,
            () => RopeKernel.BackwardFast(Span<float>(dOutput), Span<int>(positions), heads, headSize, rotaryDims, theta, Span<float>(dInput)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            RopeKernel.Backward(Span<T>(dOutput), Span<int>(positions), heads, headSize, rotaryDims, T.CreateChecked(theta), Span<T>(dInput));
    }

    // ---- residual stream -------------------------------------------------------------------------------------------

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        const string op = "add";
        RequireFloat(op, a, b, output);
        OpShapes.SameShape(op, a, b, output);
        Dispatch(a, Definition<double>, Definition<float>,
            () => ResidualKernel.AddFast(Span<float>(a), Span<float>(b), Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            ResidualKernel.Add(Span<T>(a), Span<T>(b), Span<T>(output));
    }

    public void Accumulate(Tensor source, Tensor destination)
    {
        const string op = "accumulate";
        RequireFloat(op, destination, source);
        OpShapes.SameLength(op, source, destination); // a gradient may arrive under another view of the same shape
        Dispatch(destination, Definition<double>, Definition<float>,
            () => ResidualKernel.AccumulateFast(Span<float>(source), Span<float>(destination)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            ResidualKernel.Accumulate(Span<T>(source), Span<T>(destination));
    }

    public void Scale(Tensor tensor, float factor)
    {
        RequireFloat("scale", tensor);
        Dispatch(tensor, Definition<double>, Definition<float>, () => ResidualKernel.ScaleFast(Span<float>(tensor), factor));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            ResidualKernel.Scale(Span<T>(tensor), T.CreateChecked(factor));
    }

    public double SumOfSquares(Tensor tensor)
    {
        RequireFloat("sum of squares", tensor);
        return Dispatch(tensor, Definition<double>, Definition<float>, () => ResidualKernel.SumOfSquaresFast(Span<float>(tensor)));

        double Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            ResidualKernel.SumOfSquares<T>(Span<T>(tensor));
    }

    // ---- attention -------------------------------------------------------------------------------------------------

    public void Attention(Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output, Tensor rowMax, Tensor rowSum)
    {
        RequireFloat("attention", query, key, value, output, rowMax, rowSum);
        if (scoreBias is not null) RequireFloat("attention", scoreBias);
        var n = OpShapes.Attention(query, key, value, scoreBias, mask, output, rowMax, rowSum);
        if (n.B * n.Tq == 0) return;  // no sequences, or no queries
        var hostMask = HostMaskOf(mask, n);
        float scale = mask.ScaleFor(n.HS);
        Dispatch(query, Definition<double>, Definition<float>,
            () => AttentionKernel.ForwardFast(Span<float>(query), Span<float>(key), Span<float>(value), SpanOrEmpty<float>(scoreBias),
                mask.AlibiSlopes is { } m ? Span<float>(m).ToArray() : null, hostMask, n, scale, Span<float>(output), Span<float>(rowMax), Span<float>(rowSum), AttentionKeyTile));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            AttentionKernel.Forward(Span<T>(query), Span<T>(key), Span<T>(value), SpanOrEmpty<T>(scoreBias), SpanOrEmpty<T>(mask.AlibiSlopes),
                hostMask, n, ScaleOf<T>(mask, n.HS), Span<T>(output), Span<T>(rowMax), Span<T>(rowSum));
    }

    public void AttentionBackward(Tensor dOutput, Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output,
        Tensor rowMax, Tensor rowSum, Tensor dQuery, Tensor dKey, Tensor dValue, Tensor? dScoreBias)
    {
        RequireFloat("attention backward", dOutput, query, key, value, output, rowMax, rowSum, dQuery, dKey, dValue);
        if (scoreBias is not null) RequireFloat("attention backward", scoreBias);
        if (dScoreBias is not null) RequireFloat("attention backward", dScoreBias);
        var n = OpShapes.AttentionBackward(dOutput, query, key, value, scoreBias, mask, output, rowMax, rowSum, dQuery, dKey, dValue, dScoreBias);
        if (n.B * n.Tq == 0) return;
        var hostMask = HostMaskOf(mask, n);
        float scale = mask.ScaleFor(n.HS);
        Dispatch(query, Definition<double>, Definition<float>,
            () => AttentionKernel.BackwardFast(Span<float>(dOutput), Span<float>(query), Span<float>(key), Span<float>(value), SpanOrEmpty<float>(scoreBias),
                mask.AlibiSlopes is { } m ? Span<float>(m).ToArray() : null, hostMask, n, scale, Span<float>(output), Span<float>(rowMax),
                Span<float>(rowSum), Span<float>(dQuery), Span<float>(dKey), Span<float>(dValue), SpanOrEmpty<float>(dScoreBias), AttentionKeyTile));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            AttentionKernel.Backward(Span<T>(dOutput), Span<T>(query), Span<T>(key), Span<T>(value), SpanOrEmpty<T>(scoreBias),
                SpanOrEmpty<T>(mask.AlibiSlopes), hostMask, n, ScaleOf<T>(mask, n.HS), Span<T>(rowMax), Span<T>(rowSum),
                Span<T>(dQuery), Span<T>(dKey), Span<T>(dValue), SpanOrEmpty<T>(dScoreBias));
    }

    /// <summary>The mask's index tensors copied to host arrays; prefix lengths and segment ids are checked here.</summary>
    private static HostMask HostMaskOf(AttentionMask mask, AttentionShape n)
    {
        int[]? Ints(Tensor? t) => t is null ? null : Span<int>(t).ToArray();
        var prefix = Ints(mask.PrefixLengths);
        if (prefix is not null && Array.FindIndex(prefix, p => p < 0 || p > n.Tk) is int bad and >= 0)
            throw new ArgumentException($"attention: PrefixLengths[{bad}] = {prefix[bad]} lies outside [0, Tk = {n.Tk}]");
        return new HostMask(mask, prefix, Ints(mask.QuerySegments), Ints(mask.KeySegments), n.Tq, n.Tk);
    }

    /// <summary>The score scale in T: 1/√hs computed in T (an f32-rounded factor would cost the F64 oracle 2⁻²⁴ in every score).</summary>
    private static T ScaleOf<T>(AttentionMask mask, int headSize) where T : unmanaged, IFloatingPointIeee754<T> =>
        mask.Scale is float s ? T.CreateChecked(s) : T.One / T.Sqrt(T.CreateChecked(headSize));

    private static Span<T> SpanOrEmpty<T>(Tensor? t) where T : unmanaged => t is null ? [] : Span<T>(t);

    // ---- copy columns ----------------------------------------------------------------------------------------------

    public void CopyColumns(Tensor source, int sourceColumn, Tensor destination, int destinationColumn, int width, bool accumulate = false)
    {
        RequireFloat("copy columns", source, destination);
        var (rows, cs, cd) = OpShapes.CopyColumns(source, sourceColumn, destination, destinationColumn, width);
        if (rows * width == 0) return;
        Dispatch(source, Definition<double>, Definition<float>, null);

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            CopyColumnsKernel.Copy(Span<T>(source), cs, sourceColumn, Span<T>(destination), cd, destinationColumn, width, accumulate);
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
        Dispatch(logits, Definition<double>, Definition<float>,
            () => CrossEntropyKernel.ForwardFast(Span<float>(logits), Span<int>(targets), ignoreIndex, Span<float>(probs), Span<float>(losses)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            CrossEntropyKernel.Forward(Span<T>(logits), Span<int>(targets), ignoreIndex, Span<T>(probs), Span<T>(losses));
    }

    public void CrossEntropyBackward(Tensor dLosses, Tensor probs, Tensor targets, Tensor dLogits, int ignoreIndex = -1)
    {
        const string op = "cross-entropy backward";
        RequireFloat(op, probs, dLosses, dLogits);
        RequireI32(op, targets);
        var (rows, vocab) = OpShapes.CrossEntropyBackward(dLosses, probs, targets, dLogits);
        CrossEntropyKernel.CheckTargets(Span<int>(targets), vocab, ignoreIndex, $"{op}: {targets.Describe()} for {probs.Describe()}");
        if (rows == 0) return;
        Dispatch(probs, Definition<double>, Definition<float>,
            () => CrossEntropyKernel.BackwardFast(Span<float>(dLosses), Span<float>(probs), Span<int>(targets), ignoreIndex, Span<float>(dLogits)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            CrossEntropyKernel.Backward(Span<T>(dLosses), Span<T>(probs), Span<int>(targets), ignoreIndex, Span<T>(dLogits));
    }

    // ---- optimizer -------------------------------------------------------------------------------------------------

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWParameters hyper)
    {
        RequireFloat("adamw", param, grad, m, v);
        OpShapes.AdamW(param, grad, m, v, hyper);
        Dispatch(param, Definition<double>, Definition<float>,
            () => AdamWKernel.UpdateFast(Span<float>(param), Span<float>(grad), Span<float>(m), Span<float>(v), hyper));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            AdamWKernel.Update(Span<T>(param), Span<T>(grad), Span<T>(m), Span<T>(v), hyper);
    }

    // ---- relative position bias ------------------------------------------------------------------------------------

    public void RelativePositionBias(Tensor table, Tensor buckets, Tensor output)
    {
        const string op = "relative position bias";
        RequireI32(op, buckets);
        RequireFloat(op, table, output);
        var (nb, heads, _, tk) = OpShapes.RelativePositionBias(table, buckets, output);
        RelativePositionBiasKernel.CheckBuckets(Span<int>(buckets), tk, nb, $"{op}: {buckets.Describe()} into {table.Describe()}");
        if (output.Length == 0) return;
        Dispatch(table, Definition<double>, Definition<float>,
            () => RelativePositionBiasKernel.ForwardFast(Span<float>(table), Span<int>(buckets), heads, Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            RelativePositionBiasKernel.Forward(Span<T>(table), Span<int>(buckets), heads, Span<T>(output));
    }

    public void RelativePositionBiasBackward(Tensor dOutput, Tensor buckets, Tensor dTable)
    {
        const string op = "relative position bias backward";
        RequireI32(op, buckets);
        RequireFloat(op, dTable, dOutput);
        var (nb, heads, _, tk) = OpShapes.RelativePositionBiasBackward(dOutput, buckets, dTable);
        RelativePositionBiasKernel.CheckBuckets(Span<int>(buckets), tk, nb, $"{op}: {buckets.Describe()} into {dTable.Describe()}");
        if (dOutput.Length == 0) return;
        Dispatch(dTable, Definition<double>, Definition<float>,
            () => RelativePositionBiasKernel.BackwardFast(Span<float>(dOutput), Span<int>(buckets), heads, Span<float>(dTable)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            RelativePositionBiasKernel.Backward(Span<T>(dOutput), Span<int>(buckets), heads, Span<T>(dTable));
    }

    // ---- mixture of experts -----------------------------------------------------------------------------------------

    public void Softmax(Tensor logits, Tensor probs, Tensor logSumExp)
    {
        const string op = "softmax";
        RequireFloat(op, logits, probs, logSumExp);
        var (rows, _) = OpShapes.Softmax(logits, probs, logSumExp);
        if (rows == 0) return;
        Dispatch(logits, Definition<double>, Definition<float>,
            () => SoftmaxKernel.ForwardFast(Span<float>(logits), Span<float>(probs), Span<float>(logSumExp)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            SoftmaxKernel.Forward(Span<T>(logits), Span<T>(probs), Span<T>(logSumExp));
    }

    public void SoftmaxBackward(Tensor? dProbs, Tensor? dLogSumExp, Tensor probs, Tensor dLogits)
    {
        const string op = "softmax backward";
        RequireFloat(op, probs, [dLogits, .. new[] { dProbs, dLogSumExp }.OfType<Tensor>()]);
        var (rows, width) = OpShapes.SoftmaxBackward(dProbs, dLogSumExp, probs, dLogits);
        if (rows == 0 || dProbs is null && dLogSumExp is null) return;
        Dispatch(probs, Definition<double>, Definition<float>,
            () => SoftmaxKernel.BackwardFast(SpanOrEmpty<float>(dProbs), SpanOrEmpty<float>(dLogSumExp), Span<float>(probs), width, Span<float>(dLogits)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            SoftmaxKernel.Backward(SpanOrEmpty<T>(dProbs), SpanOrEmpty<T>(dLogSumExp), Span<T>(probs), width, Span<T>(dLogits));
    }

    public void MoeRoute(Tensor probs, int capacity, bool normalize, Tensor experts, Tensor slots, Tensor gates, Tensor load)
    {
        const string op = "moe route";
        RequireFloat(op, probs, gates, load);
        RequireI32(op, experts);
        RequireI32(op, slots);
        var (_, e, _) = OpShapes.MoeRoute(probs, capacity, experts, slots, gates, load);
        // selection and counting over N·E·k elements: the definition serves F32 too (no fast path)
        Dispatch(probs, Definition<double>, Definition<float>, null);

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            MoeKernel.Route(Span<T>(probs), e, capacity, normalize, Span<int>(experts), Span<int>(slots), Span<T>(gates), Span<T>(load));
    }

    public void MoeRouteBackward(Tensor dGates, Tensor probs, Tensor experts, bool normalize, Tensor dProbs)
    {
        const string op = "moe route backward";
        RequireFloat(op, probs, dGates, dProbs);
        RequireI32(op, experts);
        var (n, e, k) = OpShapes.MoeRouteBackward(dGates, probs, experts, dProbs);
        MoeKernel.CheckExperts(Span<int>(experts), k, e, $"{op}: {experts.Describe()}");
        if (n == 0) return;
        Dispatch(probs, Definition<double>, Definition<float>, null);  // N·k updates: the definition is the fast path

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            MoeKernel.RouteBackward(Span<T>(dGates), Span<T>(probs), Span<int>(experts), e, normalize, Span<T>(dProbs));
    }

    public void MoeDispatch(Tensor input, Tensor slots, Tensor output)
    {
        const string op = "moe dispatch";
        RequireFloat(op, input, output);
        RequireI32(op, slots);
        var (_, _, r, c) = OpShapes.MoeDispatch(input, slots, output);
        MoeKernel.CheckSlots(Span<int>(slots), r, $"{op}: {slots.Describe()} into {output.Describe()}");
        if (output.Length == 0) return;
        Dispatch(input, Definition<double>, Definition<float>,
            () => MoeKernel.DispatchFast(Span<float>(input), Span<int>(slots), c, Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            MoeKernel.Dispatch(Span<T>(input), Span<int>(slots), c, Span<T>(output));
    }

    public void MoeDispatchBackward(Tensor dOutput, Tensor slots, Tensor dInput)
    {
        const string op = "moe dispatch backward";
        RequireFloat(op, dOutput, dInput);
        RequireI32(op, slots);
        var (_, _, r, c) = OpShapes.MoeDispatchBackward(dOutput, slots, dInput);
        MoeKernel.CheckSlots(Span<int>(slots), r, $"{op}: {slots.Describe()} from {dOutput.Describe()}");
        if (dInput.Length == 0) return;
        Dispatch(dOutput, Definition<double>, Definition<float>,
            () => MoeKernel.DispatchBackwardFast(Span<float>(dOutput), Span<int>(slots), c, Span<float>(dInput)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            MoeKernel.DispatchBackward(Span<T>(dOutput), Span<int>(slots), c, Span<T>(dInput));
    }

    public void MoeCombine(Tensor expertOutput, Tensor slots, Tensor gates, Tensor output)
    {
        const string op = "moe combine";
        RequireFloat(op, expertOutput, gates, output);
        RequireI32(op, slots);
        var (_, _, r, c) = OpShapes.MoeCombine(expertOutput, slots, gates, output);
        MoeKernel.CheckSlots(Span<int>(slots), r, $"{op}: {slots.Describe()} from {expertOutput.Describe()}");
        if (output.Length == 0) return;
        Dispatch(expertOutput, Definition<double>, Definition<float>,
            () => MoeKernel.CombineFast(Span<float>(expertOutput), Span<int>(slots), Span<float>(gates), c, Span<float>(output)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            MoeKernel.Combine(Span<T>(expertOutput), Span<int>(slots), Span<T>(gates), c, Span<T>(output));
    }

    public void MoeCombineBackward(Tensor dOutput, Tensor expertOutput, Tensor slots, Tensor gates, Tensor? dExpertOutput, Tensor? dGates)
    {
        const string op = "moe combine backward";
        RequireFloat(op, dOutput, [expertOutput, gates, .. new[] { dExpertOutput, dGates }.OfType<Tensor>()]);
        RequireI32(op, slots);
        var (n, _, r, c) = OpShapes.MoeCombineBackward(dOutput, expertOutput, slots, gates, dExpertOutput, dGates);
        MoeKernel.CheckSlots(Span<int>(slots), r, $"{op}: {slots.Describe()} from {expertOutput.Describe()}");
        if (n == 0 || dExpertOutput is null && dGates is null) return;
        Dispatch(dOutput, Definition<double>, Definition<float>,
            () => MoeKernel.CombineBackwardFast(Span<float>(dOutput), Span<float>(expertOutput), Span<int>(slots), Span<float>(gates), c,
                SpanOrEmpty<float>(dExpertOutput), SpanOrEmpty<float>(dGates)));

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            MoeKernel.CombineBackward(Span<T>(dOutput), Span<T>(expertOutput), Span<int>(slots), Span<T>(gates), c,
                SpanOrEmpty<T>(dExpertOutput), SpanOrEmpty<T>(dGates));
    }

    // ---- dispatch --------------------------------------------------------------------------------------------------

    /// <summary>The one dtype dispatch of every op; <paramref name="like"/> carries the op's float dtype (validated).</summary>
    private void Dispatch(Tensor like, Action f64, Action f32, Action? fast)
    {
        if (like.DType == DType.F64) f64();
        else if (FastPaths && fast is not null) fast();
        else f32();
    }

    /// <summary><see cref="Dispatch(Tensor, Action, Action, Action?)"/> for an op that returns a value.</summary>
    private TResult Dispatch<TResult>(Tensor like, Func<TResult> f64, Func<TResult> f32, Func<TResult>? fast) =>
        like.DType == DType.F64 ? f64() : FastPaths && fast is not null ? fast() : f32();

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
