using Llm.Checks;
using Llm.Conformance.Harness;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Ops;

/// <summary>
/// Zero-sized dimensions on every backend and on the definition. No rows (N = 0, B = 0, T = 0), no output columns
/// or an empty elementwise tensor is work that makes sense and does nothing; K = 0 is an empty sum (output = bias).
/// A zero axis that the math cannot define (LayerNorm or RMSNorm over C = 0 channels, a softmax over V = 0 classes, attention
/// heads of size 0) is an ArgumentException that names the tensor's shape, never a DivideByZeroException.
/// </summary>
public sealed class EmptyTensorTests
{
    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var s in Backends.Subjects) data.Add(s.Name);
        data.Add("cpu-definition");
        return data;
    }

    private static IBackend Get(string name) =>
        name == "cpu-definition" ? Oracle.Backend : Backends.Subjects.Single(s => s.Name == name).Backend;

    private static Tensor F(IBackend b, int[] shape, float fill = 0)
    {
        var t = b.Allocate(DType.F32, shape);
        if (t.Length > 0) b.Fill(t, fill);
        return t;
    }

    private static Tensor I(IBackend b, params int[] values)
    {
        var t = b.Allocate(DType.I32, [values.Length]);
        b.Upload<int>(values, t);
        return t;
    }

    private static float[] Host(IBackend b, Tensor t)
    {
        var host = new float[t.Length];
        b.Download<float>(t, host);
        return host;
    }

    private static void Clean(IBackend b)
    {
        b.Synchronize();
        if (b is Llm.Vulkan.VulkanBackend vk) Vulkan.VulkanTestDevice.AssertClean(vk);
    }

    [Theory, MemberData(nameof(Names))]
    public void No_rows_is_no_work(string name)
    {
        var b = Get(name);
        var none = I(b);
        b.Embedding(none, F(b, [5, 4], 1), F(b, [0, 4]));
        b.EmbeddingBackward(F(b, [0, 4]), none, F(b, [5, 4]));

        var a = F(b, [0, 3]);
        var w = F(b, [3, 4], 1);
        var dW = F(b, [3, 4], 7);
        b.MatMul(a, w, F(b, [4]), F(b, [0, 4]));
        b.MatMulBackward(F(b, [0, 4]), a, w, F(b, [0, 3]), dW, F(b, [4]));
        Assert.All(Host(b, dW), x => Assert.Equal(7f, x));  // an empty sum adds nothing

        b.LayerNorm(F(b, [0, 4]), F(b, [4], 1), F(b, [4]), F(b, [0, 4]), F(b, [0]), F(b, [0]));
        b.LayerNormBackward(F(b, [0, 4]), F(b, [0, 4]), F(b, [4], 1), F(b, [0]), F(b, [0]), F(b, [0, 4]), F(b, [4]), F(b, [4]));
        var dWeight = F(b, [4], 7);
        b.RmsNorm(F(b, [0, 4]), F(b, [4], 1), F(b, [0, 4]), F(b, [0]));
        b.RmsNormBackward(F(b, [0, 4]), F(b, [0, 4]), F(b, [4], 1), F(b, [0]), F(b, [0, 4]), dWeight);
        Assert.All(Host(b, dWeight), x => Assert.Equal(7f, x));

        foreach (int[] q in new[] { new[] { 0, 4, 2, 1 }, [2, 0, 2, 1] })   // no sequences; sequences of no tokens
        {
            int[] rows = [q[0], q[2], q[1]];
            b.Attention(F(b, q), F(b, q), F(b, q), null, AttentionMask.Causal, F(b, q), F(b, rows), F(b, rows));
            b.AttentionBackward(F(b, q), F(b, q), F(b, q), F(b, q), null, AttentionMask.Causal, F(b, q), F(b, rows), F(b, rows), F(b, q), F(b, q), F(b, q), null);
        }
        b.CopyColumns(F(b, [0, 4]), 1, F(b, [0, 3]), 0, 2);

        b.CrossEntropy(F(b, [0, 5]), none, F(b, [0, 5]), F(b, [0]));
        b.CrossEntropyBackward(F(b, [0]), F(b, [0, 5]), none, F(b, [0, 5]));

        var noPositions = b.Allocate(DType.I32, [0, 3]);
        b.Rope(F(b, [0, 3, 2, 8]), noPositions, F(b, [0, 3, 2, 8]), rotaryDims: 8);
        b.RopeBackward(F(b, [0, 3, 2, 8]), noPositions, F(b, [0, 3, 2, 8]), rotaryDims: 8);
        b.Rope(F(b, [2, 3, 0, 8]), b.Allocate(DType.I32, [2, 3]), F(b, [2, 3, 0, 8]), rotaryDims: 4);
        b.Rope(F(b, [2, 3, 2, 0]), b.Allocate(DType.I32, [2, 3]), F(b, [2, 3, 2, 0]), rotaryDims: 0);
        Clean(b);
    }

    [Theory, MemberData(nameof(Names))]
    public void Empty_elementwise_tensors_are_no_work(string name)
    {
        var b = Get(name);
        foreach (int[] shape in new[] { new[] { 0 }, [3, 0], [0, 5] })
        {
            b.Gelu(F(b, shape), F(b, shape));
            b.GeluBackward(F(b, shape), F(b, shape), F(b, shape));
            b.Swish(F(b, shape), F(b, shape));
            b.SwishBackward(F(b, shape), F(b, shape), F(b, shape));
            b.Relu(F(b, shape), F(b, shape));
            b.ReluBackward(F(b, shape), F(b, shape), F(b, shape));
            b.GeluExact(F(b, shape), F(b, shape));
            b.GeluExactBackward(F(b, shape), F(b, shape), F(b, shape));
            b.Multiply(F(b, shape), F(b, shape), F(b, shape));
            b.MultiplyBackward(F(b, shape), F(b, shape), F(b, shape), F(b, shape), null);
            b.Dropout(F(b, shape), F(b, shape), 0.5f, 7, 1L << 40);
            b.DropoutBackward(F(b, shape), F(b, shape), 0.5f, 7, 1L << 40);
            b.Add(F(b, shape), F(b, shape), F(b, shape));
            b.Accumulate(F(b, shape), F(b, shape));
            b.Scale(F(b, shape), 2f);
            Assert.Equal(0.0, b.SumOfSquares(F(b, shape)));
            b.Fill(F(b, shape), 1);
            b.Copy(F(b, shape), F(b, shape));
            b.Upload<float>([], F(b, shape));
            b.Download<float>(F(b, shape), []);
            b.AdamW(F(b, shape), F(b, shape), F(b, shape), F(b, shape), new AdamWParameters(1e-3f, 1));
        }
        Clean(b);
    }

    [Theory, MemberData(nameof(Names))]
    public void Empty_channels_and_inner_dimensions(string name)
    {
        var b = Get(name);
        // embedding rows of no channels: the ids are still checked, there is nothing to copy
        b.Embedding(I(b, 0, 4, 2), F(b, [5, 0]), F(b, [3, 0]));
        b.EmbeddingBackward(F(b, [3, 0]), I(b, 0, 4, 2), F(b, [5, 0]));

        // K = 0: every output element is an empty sum, so output = bias; dBias still sums dOutput's rows
        var bias = b.Allocate(DType.F32, [3]);
        b.Upload<float>([1, 2, 3], bias);
        var output = F(b, [2, 3], float.NaN);
        b.MatMul(F(b, [2, 0]), F(b, [0, 3]), bias, output);
        Assert.Equal([1, 2, 3, 1, 2, 3], Host(b, output));
        var dBias = F(b, [3]);
        b.MatMulBackward(F(b, [2, 3], 0.5f), F(b, [2, 0]), F(b, [0, 3]), F(b, [2, 0]), F(b, [0, 3]), dBias);
        Assert.Equal([1, 1, 1], Host(b, dBias));

        // N = 0 output columns: dA receives an empty sum
        var dA = F(b, [2, 3], 4);
        b.MatMul(F(b, [2, 3]), F(b, [3, 0]), null, F(b, [2, 0]));
        b.MatMulBackward(F(b, [2, 0]), F(b, [2, 3]), F(b, [3, 0]), dA, F(b, [3, 0]), F(b, [0]));
        Assert.All(Host(b, dA), x => Assert.Equal(4f, x));
        Clean(b);
    }

    [Theory, MemberData(nameof(Names))]
    public void Undefined_zero_axes_name_the_shape(string name)
    {
        var b = Get(name);
        void Refused(string shape, Action op)
        {
            var e = Assert.Throws<ArgumentException>(op);
            Assert.Contains(shape, e.Message);
        }
        Refused("[2, 0]", () => b.LayerNorm(F(b, [2, 0]), F(b, [0]), F(b, [0]), F(b, [2, 0]), F(b, [2]), F(b, [2])));
        Refused("[2, 0]", () => b.LayerNormBackward(F(b, [2, 0]), F(b, [2, 0]), F(b, [0]), F(b, [2]), F(b, [2]), F(b, [2, 0]), F(b, [0]), F(b, [0])));
        Refused("[2, 0]", () => b.RmsNorm(F(b, [2, 0]), F(b, [0]), F(b, [2, 0]), F(b, [2])));
        Refused("[2, 0]", () => b.RmsNormBackward(F(b, [2, 0]), F(b, [2, 0]), F(b, [0]), F(b, [2]), F(b, [2, 0]), F(b, [0])));
        Refused("[2, 0]", () => b.CrossEntropy(F(b, [2, 0]), I(b, 0, 0), F(b, [2, 0]), F(b, [2])));
        Refused("[2, 0]", () => b.CrossEntropyBackward(F(b, [2]), F(b, [2, 0]), I(b, 0, 0), F(b, [2, 0])));
        Refused("[1, 2, 1, 0]", () => b.Attention(F(b, [1, 2, 1, 0]), F(b, [1, 2, 1, 0]), F(b, [1, 2, 1, 0]), null, AttentionMask.Causal,
            F(b, [1, 2, 1, 0]), F(b, [1, 1, 2]), F(b, [1, 1, 2])));
        Refused("[2, 1, 2, 6]", () => b.Rope(F(b, [2, 1, 2, 6]), b.Allocate(DType.I32, [2, 1]), F(b, [2, 1, 2, 6]), rotaryDims: 8));
        Refused("[2, 1, 2, 6]", () => b.Rope(F(b, [2, 1, 2, 6]), b.Allocate(DType.I32, [2, 1]), F(b, [2, 1, 2, 6]), rotaryDims: 3));
        Refused("[1, 2]", () => b.RopeBackward(F(b, [2, 1, 2, 6]), b.Allocate(DType.I32, [1, 2]), F(b, [2, 1, 2, 6]), rotaryDims: 6));
        Clean(b);
    }

    [Theory, MemberData(nameof(Names))]
    public void Relative_position_bias_of_no_positions_or_no_heads(string name)
    {
        var b = Get(name);
        // no positions: nothing to gather or sum, even from a table of no buckets
        b.RelativePositionBias(F(b, [0, 3]), b.Allocate(DType.I32, [0, 4]), F(b, [3, 0, 4]));
        b.RelativePositionBiasBackward(F(b, [3, 4, 0]), b.Allocate(DType.I32, [4, 0]), F(b, [0, 3]));
        // no heads: no output elements, but the bucket ids are still checked
        var dTable = F(b, [5, 0]);
        b.RelativePositionBias(dTable, I(b, 0, 4, 2).Reshape(1, 3), F(b, [0, 1, 3]));
        b.RelativePositionBiasBackward(F(b, [0, 1, 3]), I(b, 0, 4, 2).Reshape(1, 3), dTable);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
        {
            b.RelativePositionBias(F(b, [5, 0]), I(b, 0, 5, 2).Reshape(1, 3), F(b, [0, 1, 3]));
            b.Synchronize();
        });
        Assert.Contains("bucket id 5 at position [0, 1] is outside [0, 5)", error.Message);
        Clean(b);
    }

    [Theory, MemberData(nameof(Names))]
    public void Empty_mixture_of_experts_tensors_are_no_work(string name)
    {
        var b = Get(name);
        Tensor Ints(params int[] shape) => b.Allocate(DType.I32, shape);
        // no tokens: the router, routing, dispatch (expert rows all 0) and combine have nothing to do
        b.Softmax(F(b, [0, 4]), F(b, [0, 4]), F(b, [0]));
        b.SoftmaxBackward(F(b, [0, 4]), F(b, [0]), F(b, [0, 4]), F(b, [0, 4]));
        var load = F(b, [4], 7);
        b.MoeRoute(F(b, [0, 4]), 3, true, Ints(0, 2), Ints(0, 2), F(b, [0, 2]), load);
        Assert.All(Host(b, load), x => Assert.Equal(0f, x));   // no tokens: no expert's load
        b.MoeRouteBackward(F(b, [0, 2]), F(b, [0, 4]), Ints(0, 2), true, F(b, [0, 4]));
        var expertRows = F(b, [12, 5], 7);
        b.MoeDispatch(F(b, [0, 5]), Ints(0, 2), expertRows);
        Assert.All(Host(b, expertRows), x => Assert.Equal(0f, x));   // rows no token took are 0
        b.MoeDispatchBackward(F(b, [12, 5]), Ints(0, 2), F(b, [0, 5]));
        b.MoeCombine(F(b, [12, 5]), Ints(0, 2), F(b, [0, 2]), F(b, [0, 5]));
        b.MoeCombineBackward(F(b, [0, 5]), F(b, [12, 5]), Ints(0, 2), F(b, [0, 2]), F(b, [12, 5]), F(b, [0, 2]));
        // no expert rows (capacity 0) and rows of no channels
        var dropped = I(b, -1, -1, -1).Reshape(3, 1);
        b.MoeDispatch(F(b, [3, 0]), dropped, F(b, [0, 0]));
        b.MoeCombine(F(b, [0, 0]), dropped, F(b, [3, 1]), F(b, [3, 0]));
        Clean(b);
    }
}
