using Llm.Autograd;
using Llm.Cpu;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Model;

/// <summary>Tape ops against the backend calls they record: the [B, T, C] → [N, C] reshapes, the saved tensors, eps
/// passed through, and gradients created zeroed before backward accumulates.</summary>
public sealed class TapeOpTests
{
    private static readonly CpuBackend Definition = new(fastPaths: false);

    private static Tensor Put(double[] values, params int[] shape)
    {
        var t = Definition.Allocate(DType.F64, shape);
        Definition.Upload<double>(values, t);
        return t;
    }

    private static double[] Get(Tensor t)
    {
        var values = new double[t.Length];
        Definition.Download<double>(t, values);
        return values;
    }

    private static double[] Uniform(int n, int seed, double shift = 0)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => rng.NextDouble() * 2 - 1 + shift)];
    }

    [Fact]
    public void RmsNormRecordsItsBackward()
    {
        const int b = 2, t = 3, c = 5;
        const float eps = 1e-2f;   // large enough that dropping it on the way changes every output
        double[] x = Uniform(b * t * c, 1, 0.1), w = Uniform(c, 2, 1), dy = Uniform(b * t * c, 3);

        using var tape = new Tape(Definition);
        Var input = new(Put(x, b, t, c), requiresGrad: true), weight = new(Put(w, c), requiresGrad: true);
        Var output = tape.RmsNorm(input, weight, eps);
        tape.Backward(output, Put(dy, b, t, c));

        Tensor expected = Definition.Allocate(DType.F64, [b * t, c]), rstd = Definition.Allocate(DType.F64, [b * t]);
        Tensor dInput = Definition.Allocate(DType.F64, [b * t, c]), dWeight = Definition.Allocate(DType.F64, [c]);
        Definition.RmsNorm(Put(x, b * t, c), Put(w, c), expected, rstd, eps);
        Definition.RmsNormBackward(Put(dy, b * t, c), Put(x, b * t, c), Put(w, c), rstd, dInput, dWeight);

        Assert.Equal([b, t, c], output.Shape);
        Assert.Equal(Get(expected), Get(output.Value));
        Assert.Equal(Get(dInput), Get(input.Grad!));
        Assert.Equal(Get(dWeight), Get(weight.Grad!));
    }

    [Fact]
    public void SwishRecordsItsBackward()
    {
        const int b = 2, t = 3, c = 5;
        const float beta = 1.702f;   // not the default 1, so dropping β on the way changes every output
        double[] x = Uniform(b * t * c, 4), dy = Uniform(b * t * c, 5);

        using var tape = new Tape(Definition);
        Var input = new(Put(x, b, t, c), requiresGrad: true);
        Var output = tape.Swish(input, beta);
        tape.Backward(output, Put(dy, b, t, c));

        Tensor expected = Definition.Allocate(DType.F64, [b, t, c]), dInput = Definition.Allocate(DType.F64, [b, t, c]);
        Definition.Swish(Put(x, b, t, c), expected, beta);
        Definition.SwishBackward(Put(dy, b, t, c), Put(x, b, t, c), dInput, beta);

        Assert.Equal([b, t, c], output.Shape);
        Assert.Equal(Get(expected), Get(output.Value));
        Assert.Equal(Get(dInput), Get(input.Grad!));
    }

    [Fact]
    public void DropoutRecordsItsBackwardWithTheSameStream()
    {
        const int b = 2, t = 3, c = 5;
        const float p = 0.5f;
        const ulong seed = 0x0123456789abcdef;
        const long offset = (1L << 40) + 3;   // past 2³²: a counter cut to 32 bits, or a lost offset, drops other elements
        double[] x = Uniform(b * t * c, 6), dy = Uniform(b * t * c, 7);

        using var tape = new Tape(Definition);
        Var input = new(Put(x, b, t, c), requiresGrad: true);
        Var output = tape.Dropout(input, p, seed, offset);
        tape.Backward(output, Put(dy, b, t, c));

        Tensor expected = Definition.Allocate(DType.F64, [b, t, c]), dInput = Definition.Allocate(DType.F64, [b, t, c]);
        Definition.Dropout(Put(x, b, t, c), expected, p, seed, offset);
        Definition.DropoutBackward(Put(dy, b, t, c), dInput, p, seed, offset);

        Assert.Equal([b, t, c], output.Shape);
        Assert.Equal(Get(expected), Get(output.Value));
        Assert.Equal(Get(dInput), Get(input.Grad!));
        Assert.Contains(0.0, Get(output.Value));    // some dropped, some kept: the mask is not trivially all or nothing
        Assert.Contains(Get(output.Value), v => v != 0);
    }

    [Fact]
    public void ReluAndGeluExactRecordTheirBackward()
    {
        const int b = 2, t = 3, c = 5;
        double[] x = Uniform(b * t * c, 6), dy = Uniform(b * t * c, 7);
        foreach (var (record, forward, backward) in new (Func<Tape, Var, Var>, Action<Tensor, Tensor>, Action<Tensor, Tensor, Tensor>)[]
            {
                ((tape, v) => tape.Relu(v), Definition.Relu, Definition.ReluBackward),
                ((tape, v) => tape.GeluExact(v), Definition.GeluExact, Definition.GeluExactBackward),
            })
        {
            using var tape = new Tape(Definition);
            Var input = new(Put(x, b, t, c), requiresGrad: true);
            Var output = record(tape, input);
            tape.Backward(output, Put(dy, b, t, c));

            Tensor expected = Definition.Allocate(DType.F64, [b, t, c]), dInput = Definition.Allocate(DType.F64, [b, t, c]);
            forward(Put(x, b, t, c), expected);
            backward(Put(dy, b, t, c), Put(x, b, t, c), dInput);

            Assert.Equal([b, t, c], output.Shape);
            Assert.Equal(Get(expected), Get(output.Value));
            Assert.Equal(Get(dInput), Get(input.Grad!));
        }
    }

    [Fact]
    public void MultiplyRecordsBothGradients()
    {
        const int b = 2, t = 3, c = 5;
        double[] x = Uniform(b * t * c, 8), g = Uniform(b * t * c, 9), dy = Uniform(b * t * c, 10);

        using var tape = new Tape(Definition);
        Var left = new(Put(x, b, t, c), requiresGrad: true), right = new(Put(g, b, t, c), requiresGrad: true);
        Var output = tape.Multiply(left, right);
        tape.Backward(output, Put(dy, b, t, c));

        Assert.Equal([b, t, c], output.Shape);
        Assert.Equal(x.Zip(g, (p, q) => p * q), Get(output.Value));
        Assert.Equal(dy.Zip(g, (p, q) => p * q), Get(left.Grad!));   // dA = dy ⊙ b
        Assert.Equal(dy.Zip(x, (p, q) => p * q), Get(right.Grad!));  // dB = dy ⊙ a
    }

    [Fact]
    public void MultiplyOfAVarWithItselfAccumulatesBothTerms()
    {
        double[] x = Uniform(6, 11), dy = Uniform(6, 12);
        using var tape = new Tape(Definition);
        Var input = new(Put(x, 6), requiresGrad: true);
        tape.Backward(tape.Multiply(input, input), Put(dy, 6));
        var expected = dy.Zip(x, (p, q) => 2 * p * q).ToArray();  // d(x²) = 2x·dy
        var actual = Get(input.Grad!);
        for (int i = 0; i < 6; i++) Assert.Equal(expected[i], actual[i], 15);
    }

    [Fact]
    public void RopeRecordsItsBackward()
    {
        const int b = 2, t = 3, h = 2, hs = 6, rotaryDims = 4;
        const float theta = 500000f;   // not the default 1e4, so dropping θ on the way changes every rotated output
        double[] x = Uniform(b * t * h * hs, 6), dy = Uniform(b * t * h * hs, 7);
        var positions = Definition.Allocate(DType.I32, [b, t]);
        Definition.Upload<int>([5, 6, 7, 0, 1000, 31], positions);

        using var tape = new Tape(Definition);
        Var input = new(Put(x, b, t, h, hs), requiresGrad: true);
        Var output = tape.Rope(input, positions, rotaryDims, theta);
        tape.Backward(output, Put(dy, b, t, h, hs));

        Tensor expected = Definition.Allocate(DType.F64, [b, t, h, hs]), dInput = Definition.Allocate(DType.F64, [b, t, h, hs]);
        Definition.Rope(Put(x, b, t, h, hs), positions, expected, rotaryDims, theta);
        Definition.RopeBackward(Put(dy, b, t, h, hs), positions, dInput, rotaryDims, theta);

        Assert.Equal([b, t, h, hs], output.Shape);
        Assert.Equal(Get(expected), Get(output.Value));
        Assert.Equal(Get(dInput), Get(input.Grad!));
    }
}
