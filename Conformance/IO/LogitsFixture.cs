using Llm.Autograd;
using Llm.Checks;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;

namespace Llm.Conformance.IO;

/// <summary>A logits.safetensors fixture (tokens [B, T] I32, logits [B, T, V] from torch in float64, rounded to f32)
/// against a model's forward: the Hugging Face family and Meta LLaMA tests read theirs the same way.</summary>
internal static class LogitsFixture
{
    /// <summary>The forward's logits on the fixture's tokens, the fixture's logits and their shape, and the worst error
    /// as a fraction of the bound <paramref name="tolerance"/>·(|b| + rms(b)).</summary>
    public static (double[] Actual, double[] Expected, int[] Shape, double Worst) Run(Decoder model, string path, double tolerance)
    {
        using var fixture = SafeTensorsFile.Read(path);
        var tokenShape = fixture.Info("tokens").Shape;
        var tokens = new int[tokenShape[0] * tokenShape[1]];
        fixture.ReadInt32("tokens", tokens);
        var expected = new double[fixture.Info("logits").ElementCount];
        fixture.ReadDouble("logits", expected);
        double[] actual;
        using (var tape = new Tape(model.Backend))
        {
            var ids = tape.Temp(DType.I32, tokenShape);
            model.Backend.Upload<int>(tokens, ids);
            actual = OpCheck.Download(model.Backend, model.Forward(tape, ids).Value);
        }
        double rms = Compare.Rms(expected);
        double worst = actual.Select((a, i) => Math.Abs(a - expected[i]) / (tolerance * (Math.Abs(expected[i]) + rms))).Max();
        return (actual, expected, fixture.Info("logits").Shape, worst);
    }
}
