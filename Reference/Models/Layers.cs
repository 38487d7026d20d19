using Llm.Autograd;
using Llm.Tensors;

namespace Llm.Models;

/// <summary>
/// The layers the models compose, written once over the tape: a norm, a linear layer in either layout, the FFN with
/// every activation of the catalogue, and dropout at a site of the forward's stream. Shapes: [.., C] in, [.., C'] out.
/// </summary>
public static class Layers
{
    /// <summary>RMSNorm, or LayerNorm with the norm's bias (a bias-free LayerNorm takes <paramref name="zeroBias"/> [C] zeros).</summary>
    public static Var Normalize(Tape tape, Var x, Decoder.Norm norm, NormKind kind, float eps, Tensor? zeroBias) => kind == NormKind.RmsNorm
        ? tape.RmsNorm(x, norm.Weight, eps)
        : tape.LayerNorm(x, norm.Weight, norm.Bias ?? new Var(zeroBias ?? throw new ArgumentException("a bias-free LayerNorm needs its zero bias")), eps);

    /// <summary>x · Wᵀ (+ b) for W [out, in] (nn.Linear), x · W (+ b) for W [in, out] (Conv1D).</summary>
    public static Var Apply(Tape tape, Var x, Decoder.Linear linear) => linear.OutIn
        ? tape.MatMul(x, linear.Weight, linear.Bias, transB: true)
        : tape.Linear(x, linear.Weight, linear.Bias);

    /// <summary>The activation of an FFN's hidden (the activated half of a gated one).</summary>
    public static Var Activate(Tape tape, Var x, Activation activation, float swishBeta = 1f) => activation switch
    {
        Activation.Relu or Activation.ReGlu => tape.Relu(x),
        Activation.GeluExact or Activation.GeGlu => tape.GeluExact(x),
        Activation.GeluTanh or Activation.GeGluTanh => tape.Gelu(x),
        Activation.Swish or Activation.SwiGlu => tape.Swish(x, swishBeta),
        Activation.Glu => tape.Sigmoid(x),
        _ => x,   // Bilinear: no activation
    };

    /// <summary>act(x·Up)·Down, or act(x·Gate) ⊙ (x·Up)·Down for the gated family; <paramref name="hidden"/> acts on the
    /// [.., F] hidden before Down (T5's dropout there).</summary>
    public static Var FeedForward(Tape tape, Var x, Decoder.FfnWeights w, Activation activation, float swishBeta = 1f, Func<Var, Var>? hidden = null)
    {
        var h = w.Gate is { } gate
            ? tape.Multiply(Activate(tape, Apply(tape, x, gate), activation, swishBeta), Apply(tape, x, w.Up))   // [.., F]
            : Activate(tape, Apply(tape, x, w.Up), activation, swishBeta);
        return Apply(tape, hidden is null ? h : hidden(h), w.Down);
    }

    /// <summary>Inverted dropout with probability p from the forward's stream, at counter range <paramref name="site"/>
    /// (<see cref="DropoutStream.Offset"/>); x itself when p = 0 or there is no stream.</summary>
    public static Var Drop(Tape tape, Var x, float p, DropoutStream? stream, int site) =>
        p == 0 || stream is not { } s ? x : tape.Dropout(x, p, s.Key, DropoutStream.Offset(site));
}
