using FsCheck;
using FsCheck.Fluent;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>One AdamW step on N parameters at step Step (bias correction matters most at small steps).</summary>
public sealed record AdamWCase(int N, int Step, float LearningRate, float WeightDecay, int Seed)
{
    public AdamWParameters Hyper => new(LearningRate, Step, WeightDecay: WeightDecay);
    public override string ToString() => $"param[{N}] step={Step} lr={LearningRate} wd={WeightDecay} seed={Seed}";

    public static Arbitrary<AdamWCase> Arbitrary() => Arb.From(
        from n in Dims.Dim(70_000)
        from step in Gen.Frequency((2, Gen.Choose(1, 3)), (1, Gen.Choose(4, 5000)))
        from lr in Gen.Elements(1e-3f, 6e-3f, 3e-2f)
        from wd in Gen.Elements(0f, 0.1f)
        from seed in Dims.Seed
        select new AdamWCase(n, step, lr, wd, seed),
        c => Dims.Shrink(c, [c.N, c.Step], d => c with { N = d[0], Step = d[1] }));
}

public static class AdamWChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("AdamW", "Step", AdamWCase.Arbitrary(), Step),
    ];

    /// <summary>The update δ = −lr(m̂/(√v̂+ε) + λ·param) is ≈ lr, small next to |param| ≈ 1: the harness compares
    /// the increment of every in-out buffer, so δ itself is held to the elementwise bound (beyond param's own f32
    /// rounding, ≤ 2⁻²⁴·|param|). A wrong bias correction, ε placement or missing decay changes δ by ≥ 1e-4.</summary>
    public static void Step(AdamWCase c, CheckContext context)
    {
        var check = new OpCheck("AdamW", c, c.Seed, context);
        var paramValues = Values.Normal(check.Rng, c.N);
        var param = check.InOut("param", [c.N], paramValues, Tolerance.Elementwise);
        var grad = check.Input("grad", [c.N], Values.Normal(check.Rng, c.N, 0.1));
        var m = check.InOut("m", [c.N], Values.Normal(check.Rng, c.N, 0.05), Tolerance.Elementwise);
        // v ≥ 0: a running mean of squares
        var v = check.InOut("v", [c.N], Values.Normal(check.Rng, c.N, 0.05).Select(x => (double)(float)(x * x)).ToArray(), Tolerance.Elementwise);
        check.Run((b, t) => b.AdamW(t(param), t(grad), t(m), t(v), c.Hyper));
    }
}
