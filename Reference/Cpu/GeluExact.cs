using System.Numerics;

namespace Llm.Cpu;

// Shapes: any; elementwise over L = N*C elements.

/// <summary>Exact GeLU (Hendrycks and Gimpel 2016; PyTorch's F.gelu, approximate='none'): y = x·Φ(x) = ½x(1 + erf(x/√2)),
/// with Φ(x) = ½erfc(−x/√2), which keeps its relative accuracy in the tail x ≪ 0 where 1 + erf(x/√2) cancels.</summary>
public static class GeluExactKernel
{
    public const double InvSqrt2 = 0.70710678118654752440;      // 1/√2
    public const double InvSqrt2Pi = 0.39894228040143267794;    // 1/√(2π)

    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[i] = input[i]·Φ(input[i]).</summary>
    public static void Forward<T>(ReadOnlySpan<T> input, Span<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [L], output [L]
        for (int i = 0; i < input.Length; i++)
        {
            T x = input[i];
            output[i] = x * Phi(x);
        }
    }

    /// <summary>dInput[i] += dOutput[i]·(Φ(x) + x·φ(x)), φ(x) = e^(−x²/2)/√(2π), x = input[i].</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> input, Span<T> dInput)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [L], input [L], dInput [L]
        T half = T.CreateChecked(0.5), invSqrt2Pi = T.CreateChecked(InvSqrt2Pi);
        for (int i = 0; i < input.Length; i++)
        {
            T x = input[i];
            T density = T.Exp(-half * x * x) * invSqrt2Pi;
            dInput[i] += (Phi(x) + x * density) * dOutput[i];
        }
    }

    /// <summary>The standard normal CDF Φ(x) = ½erfc(−x/√2).</summary>
    public static T Phi<T>(T x) where T : unmanaged, IFloatingPointIeee754<T> =>
        T.CreateChecked(0.5) * Erfc(-x * T.CreateChecked(InvSqrt2));

    /// <summary>erf(x) by fdlibm's rational approximations (Sun, s_erf.c, 1993): each range's approximation errs below
    /// 2⁻⁵⁷, so in double the result is within ~1 ulp (|erf(x) − exact| ≤ 2.2e-16 on the values tested); in float,
    /// within a few float ulp. NaN stays NaN.</summary>
    public static T Erf<T>(T x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (T.IsNaN(x)) return x;
        T a = T.Abs(x), sign = T.CopySign(T.One, x);
        if (a < T.CreateChecked(0.84375)) return x + x * Small(a * a);                        // erf(x) = x + x·R(x²)
        if (a < T.CreateChecked(1.25)) return sign * (T.CreateChecked(Erx) + Medium(a - T.One)); // erf = erx + P/Q(|x| − 1)
        if (a >= T.CreateChecked(6)) return sign;                                              // 1 − erf(6) < 2⁻⁵⁴
        return sign * (T.One - Tail(a));
    }

    /// <summary>erfc(x) = 1 − erf(x) by the same approximations, relative accuracy kept for large x (erfc(x) ≈ e^(−x²)/(x√π)):
    /// within a few ulp in double down to the underflow at x ≈ 26.5. NaN stays NaN.</summary>
    public static T Erfc<T>(T x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (T.IsNaN(x)) return x;
        T a = T.Abs(x), half = T.CreateChecked(0.5);
        bool negative = x < T.Zero;
        if (a < T.CreateChecked(0.84375))
        {
            T y = Small(a * a);
            if (negative) return T.One + (a + a * y);
            return a < T.CreateChecked(0.25) ? T.One - (a + a * y) : half - (a * y + (a - half));  // 1 − erf without losing bits
        }
        if (a < T.CreateChecked(1.25))
        {
            T p = Medium(a - T.One), erx = T.CreateChecked(Erx);
            return negative ? T.One + erx + p : T.One - erx - p;
        }
        if (negative) return a > T.CreateChecked(6) ? T.CreateChecked(2) : T.CreateChecked(2) - Tail(a);
        return a < T.CreateChecked(28) ? Tail(a) : T.Zero;
    }

    // erx = erf(1) rounded to 24 bits: erf(1 + s) = erx + P(s)/Q(s) on 0.84375 ≤ |x| < 1.25
    private const double Erx = 8.45062911510467529297e-01;

    /// <summary>R(z) = P(z)/Q(z), z = x², with erf(x) = x + x·R(x²) on |x| &lt; 0.84375.</summary>
    private static T Small<T>(T z) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T p = Poly(z, 1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
            -5.77027029648944159157e-03, -2.37630166566501626084e-05);
        T q = Poly(z, 1, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
            1.32494738004321644526e-04, -3.96022827877536812320e-06);
        return p / q;
    }

    /// <summary>P(s)/Q(s), s = |x| − 1, with erf(|x|) = erx + P/Q on 0.84375 ≤ |x| &lt; 1.25.</summary>
    private static T Medium<T>(T s) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T p = Poly(s, -2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
            3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02, -2.16637559486879084300e-03);
        T q = Poly(s, 1, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
            1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02);
        return p / q;
    }

    /// <summary>erfc(a) for 1.25 ≤ a &lt; 28: e^(−a² − 0.5625 + R/S(1/a²))/a, with −a² split as −z² + (z − a)(z + a), z = a
    /// truncated to 7 fraction bits, so that z² is exact in float and double and e^(−z²) carries no argument rounding.</summary>
    private static T Tail<T>(T a) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T s = T.One / (a * a), r, q;
        if (a < T.CreateChecked(1 / 0.35))
        {
            r = Poly(s, -9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
                -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
                -8.12874355063065934246e+01, -9.81432934416914548592e+00);
            q = Poly(s, 1, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
                6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
                6.57024977031928170135e+00, -6.04244152148580987438e-02);
        }
        else
        {
            r = Poly(s, -9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
                -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
                -4.83519191608651397019e+02);
            q = Poly(s, 1, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
                3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
                -2.24409524465858183362e+01);
        }
        T scale = T.CreateChecked(128), z = T.Truncate(a * scale) / scale;
        return T.Exp(-z * z - T.CreateChecked(0.5625)) * T.Exp((z - a) * (z + a) + r / q) / a;
    }

    /// <summary>c₀ + c₁t + c₂t² + … by Horner's rule.</summary>
    private static T Poly<T>(T t, params ReadOnlySpan<double> c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T sum = T.CreateChecked(c[^1]);
        for (int k = c.Length - 2; k >= 0; k--) sum = sum * t + T.CreateChecked(c[k]);
        return sum;
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> at T = float bit for bit (TensorPrimitives has no erf, so each chunk
    /// runs the definition): fixed chunks in parallel.</summary>
    public static void ForwardFast(ReadOnlySpan<float> input, Span<float> output)
    {
        // input [L], output [L]
        if (output.Length != input.Length) throw new ArgumentException("gelu exact: input and output lengths differ");
        KernelParallel.Elementwise(input, output, 16, (x, y) => Forward<float>(x, y));  // x, y [chunk]
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> at T = float bit for bit: fixed chunks in parallel.</summary>
    public static void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, Span<float> dInput)
    {
        // dOutput [L], input [L], dInput [L]
        if (dOutput.Length != input.Length || dInput.Length != input.Length)
            throw new ArgumentException("gelu exact backward: dOutput, input and dInput lengths differ");
        KernelParallel.Elementwise(dOutput, input, dInput, 20, (dy, x, dx) => Backward<float>(dy, x, dx));  // dy, x, dx [chunk]
    }
}
