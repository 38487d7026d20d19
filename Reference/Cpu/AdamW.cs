using System.Numerics;
using System.Runtime.CompilerServices;
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

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Update{T}"/> (the same float operations, vectorized, no fused multiply-add):
    /// one pass over memory, fixed chunks in parallel.</summary>
    public static unsafe void UpdateFast(Span<float> param, ReadOnlySpan<float> grad, Span<float> m, Span<float> v, AdamWParameters hyper)
    {
        // param [P], grad [P], m [P], v [P]
        CheckStep(hyper);
        int length = param.Length;
        if (grad.Length != length || m.Length != length || v.Length != length)
            throw new ArgumentException("adamw: param, grad, m and v lengths differ");
        float lr = hyper.LearningRate, eps = hyper.Epsilon, wd = hyper.WeightDecay, beta1 = hyper.Beta1, beta2 = hyper.Beta2;
        float correction1 = (float)(1 - Math.Pow(hyper.Beta1, hyper.Step));
        float correction2 = (float)(1 - Math.Pow(hyper.Beta2, hyper.Step));
        fixed (float* pParam = param, pGrad = grad, pM = m, pV = v)
        {
            var params_ = new Pinned<float>(pParam, length);
            var grads = new Pinned<float>(pGrad, length);
            var ms = new Pinned<float>(pM, length);
            var vs = new Pinned<float>(pV, length);
            KernelParallel.For(KernelParallel.Chunks(length), 4L * length, k =>
            {
                int start = k * KernelParallel.Chunk, count = Math.Min(KernelParallel.Chunk, length - start);
                UpdateChunk(params_.Slice(start, count), grads.Slice(start, count), ms.Slice(start, count), vs.Slice(start, count),
                    lr, beta1, beta2, eps, wd, correction1, correction2);
            });
        }
    }

    /// <summary>One chunk of <see cref="UpdateFast"/>; the float bias corrections 1 − βᵗ are precomputed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the unoptimized first JIT tier
    private static void UpdateChunk(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v,
        float lr, float beta1, float beta2, float eps, float wd, float correction1, float correction2)
    {
        // p, g, m, v [chunk]
        int i = 0, width = Vector<float>.Count, count = p.Length;
        var vBeta1 = new Vector<float>(beta1); var vOneMinusBeta1 = new Vector<float>(1f - beta1);
        var vBeta2 = new Vector<float>(beta2); var vOneMinusBeta2 = new Vector<float>(1f - beta2);
        var vC1 = new Vector<float>(correction1); var vC2 = new Vector<float>(correction2);
        var vLr = new Vector<float>(lr); var vEps = new Vector<float>(eps); var vWd = new Vector<float>(wd);
        for (; i <= count - width; i += width)
        {
            var gi = new Vector<float>(g.Slice(i));
            var mi = vBeta1 * new Vector<float>(m.Slice(i)) + vOneMinusBeta1 * gi;
            var vi = vBeta2 * new Vector<float>(v.Slice(i)) + vOneMinusBeta2 * gi * gi;
            var pi = new Vector<float>(p.Slice(i));
            pi -= vLr * ((mi / vC1) / (Vector.SquareRoot(vi / vC2) + vEps) + vWd * pi);
            mi.CopyTo(m.Slice(i));
            vi.CopyTo(v.Slice(i));
            pi.CopyTo(p.Slice(i));
        }
        for (; i < count; i++)
        {
            float gi = g[i];
            m[i] = beta1 * m[i] + (1f - beta1) * gi;
            v[i] = beta2 * v[i] + (1f - beta2) * gi * gi;
            p[i] -= lr * ((m[i] / correction1) / (MathF.Sqrt(v[i] / correction2) + eps) + wd * p[i]);
        }
    }
}
