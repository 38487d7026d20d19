using System.Numerics;
using System.Numerics.Tensors;
using Llm.Tensors;

namespace Llm.Cpu;

// Shapes: P parameters, flat; param, grad, m, v all [P].

/// <summary>One AdamW step (Loshchilov &amp; Hutter, decoupled weight decay), in place on param, m and v.</summary>
public static class AdamWKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>With t = step (1-based): m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; m̂ = m/(1−β1ᵗ); v̂ = v/(1−β2ᵗ);
    /// param −= lr·(m̂/(√v̂ + ε) + weightDecay·param).</summary>
    public static void Update<T>(Span<T> param, ReadOnlySpan<T> grad, Span<T> m, Span<T> v, AdamWParameters hyper)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // param [P], grad [P], m [P], v [P]
        CheckStep(hyper);
        T lr = T.CreateChecked(hyper.LearningRate), eps = T.CreateChecked(hyper.Epsilon), wd = T.CreateChecked(hyper.WeightDecay);
        T beta1 = T.CreateChecked(hyper.Beta1), beta2 = T.CreateChecked(hyper.Beta2);
        // bias corrections 1 − βᵗ, computed once in double: they undo m and v's pull towards their zero start
        T correction1 = T.CreateChecked(1 - Math.Pow(hyper.Beta1, hyper.Step));
        T correction2 = T.CreateChecked(1 - Math.Pow(hyper.Beta2, hyper.Step));
        for (int i = 0; i < param.Length; i++)
        {
            T g = grad[i];
            m[i] = beta1 * m[i] + (T.One - beta1) * g;
            v[i] = beta2 * v[i] + (T.One - beta2) * g * g;
            T mHat = m[i] / correction1;
            T vHat = v[i] / correction2;
            param[i] -= lr * (mHat / (T.Sqrt(vHat) + eps) + wd * param[i]);
        }
    }

    /// <summary>The step is 1-based: step 0 would divide by the bias correction 1 − β⁰ = 0.</summary>
    public static void CheckStep(AdamWParameters hyper)
    {
        if (hyper.Step < 1)
            throw new ArgumentOutOfRangeException(nameof(hyper), $"AdamW step is 1-based, got {hyper.Step}");
    }
}
