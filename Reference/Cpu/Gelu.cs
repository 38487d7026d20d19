using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Llm.Cpu;

// Shapes: any; elementwise over L = N*C elements.

/// <summary>GPT-2's tanh approximation of GeLU: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
public static class GeluKernel
{
    /// <summary>√(2/π), GELU_SCALING_FACTOR in llm.c.</summary>
    public const double Scaling = 0.79788456080286535588; // sqrt(2/pi)
    public const double Cubic = 0.044715;

    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[i] = ½·input[i]·(1 + tanh(√(2/π)(input[i] + 0.044715·input[i]³))).</summary>
    public static void Forward<T>(ReadOnlySpan<T> input, Span<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [L], output [L]
        T half = T.CreateChecked(0.5), scaling = T.CreateChecked(Scaling), cubic = T.CreateChecked(Cubic);
        for (int i = 0; i < input.Length; i++)
        {
            T x = input[i];
            output[i] = half * x * (T.One + T.Tanh(scaling * (x + cubic * x * x * x)));
        }
    }

    /// <summary>dInput[i] += dOutput[i] · gelu'(input[i]), with u = √(2/π)(x + 0.044715x³):
    /// gelu'(x) = ½(1 + tanh u) + ½x·(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²).</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> input, Span<T> dInput)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [L], input [L], dInput [L]
        T half = T.CreateChecked(0.5), scaling = T.CreateChecked(Scaling), cubic = T.CreateChecked(Cubic);
        T three = T.CreateChecked(3);
        for (int i = 0; i < input.Length; i++)
        {
            T x = input[i];
            T tanhU = T.Tanh(scaling * (x + cubic * x * x * x));
            T sech2 = T.One - tanhU * tanhU; // sech²u = 1 − tanh²u (llm.c writes 1/cosh²u; same value, no overflow)
            T local = half * (T.One + tanhU) + x * half * sech2 * scaling * (T.One + three * cubic * x * x);
            dInput[i] += local * dOutput[i];
        }
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> up to float rounding (TensorPrimitives.Tanh instead of
    /// MathF.Tanh): fixed chunks in parallel, the polynomial vectorized.</summary>
    public static void ForwardFast(ReadOnlySpan<float> input, Span<float> output)
    {
        // input [L], output [L]
        if (output.Length != input.Length) throw new ArgumentException("gelu: input and output lengths differ");
        KernelParallel.Elementwise(input, output, 1, (x, y) =>  // x, y [chunk]
        {
            TanhArgument(x, y);
            TensorPrimitives.Tanh(y, y);
            // y = ½x(1 + tanh u)
            TensorPrimitives.AddMultiply(y, 1f, x, y);      // (tanh u + 1)·x
            TensorPrimitives.Multiply(y, 0.5f, y);
        });
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding: fixed chunks in parallel, vectorized.</summary>
    public static void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, Span<float> dInput)
    {
        // dOutput [L], input [L], dInput [L]
        if (dOutput.Length != input.Length || dInput.Length != input.Length)
            throw new ArgumentException("gelu backward: dOutput, input and dInput lengths differ");
        KernelParallel.Elementwise(dOutput, input, dInput, 4, (dy, x, dx) =>  // dy, x, dx [chunk]
        {
            Span<float> tanhU = stackalloc float[x.Length]; // [chunk]
            TanhArgument(x, tanhU);
            TensorPrimitives.Tanh(tanhU, tanhU);
            AccumulateGradient(x, tanhU, dy, dx);
        });
    }

    /// <summary>u[i] = √(2/π)(x[i] + 0.044715·x[i]³).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TanhArgument(ReadOnlySpan<float> x, Span<float> u)
    {
        const float scaling = (float)Scaling, cubic = (float)Cubic;
        int i = 0, width = Vector<float>.Count;
        var vScaling = new Vector<float>(scaling);
        var vCubic = new Vector<float>(cubic);
        for (; i <= x.Length - width; i += width)
        {
            var v = new Vector<float>(x.Slice(i));
            (vScaling * (v + vCubic * v * v * v)).CopyTo(u.Slice(i));
        }
        for (; i < x.Length; i++) u[i] = scaling * (x[i] + cubic * x[i] * x[i] * x[i]);
    }

    /// <summary>dx[i] += dy[i]·(½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)), t = tanh u[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateGradient(ReadOnlySpan<float> x, ReadOnlySpan<float> tanhU, ReadOnlySpan<float> dy, Span<float> dx)
    {
        const float scaling = (float)Scaling, cubic3 = 3 * (float)Cubic;
        int i = 0, width = Vector<float>.Count;
        var half = new Vector<float>(0.5f);
        var vScaling = new Vector<float>(scaling);
        var vCubic3 = new Vector<float>(cubic3);
        for (; i <= x.Length - width; i += width)
        {
            var v = new Vector<float>(x.Slice(i));
            var t = new Vector<float>(tanhU.Slice(i));
            var local = half * (Vector<float>.One + t) + v * half * (Vector<float>.One - t * t) * vScaling * (Vector<float>.One + vCubic3 * v * v);
            (new Vector<float>(dx.Slice(i)) + local * new Vector<float>(dy.Slice(i))).CopyTo(dx.Slice(i));
        }
        for (; i < x.Length; i++)
        {
            float v = x[i], t = tanhU[i];
            float local = 0.5f * (1f + t) + v * 0.5f * (1f - t * t) * scaling * (1f + cubic3 * v * v);
            dx[i] += local * dy[i];
        }
    }
}
