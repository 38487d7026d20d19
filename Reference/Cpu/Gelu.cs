using System.Numerics;
using System.Numerics.Tensors;

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
}
