using FsCheck;
using FsCheck.Fluent;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>
/// N tokens routed to K of E experts with capacity ⌈K·N·Factor/E⌉ (Factor 0.5 drops many tokens, 2 few), C channels.
/// probs are rows of a softmax with well-separated entries (levels a permutation of 1..E, jittered by under 0.3 of a
/// level), so no finite-difference step flips a routing decision. One file for MoeRoute, MoeDispatch and MoeCombine:
/// they share the routing a case draws.
/// </summary>
public sealed record MoeCase(int N, int E, int K, int C, double Factor, bool Normalize, int Seed)
{
    public int Capacity => (int)Math.Ceiling(K * N * Factor / E);
    public int Rows => E * Capacity;
    public override string ToString() => $"tokens={N} experts={E} k={K} C={C} factor={Factor} capacity={Capacity} normalize={Normalize} seed={Seed}";

    public static Arbitrary<MoeCase> Arbitrary() => Arb.From(
        from n in Dims.Dim(300)
        from e in Gen.Elements(1, 2, 3, 4, 8, 16, 64)
        from k in Gen.Elements(1, 1, 2, 2, 3)
        from ch in Dims.Dim(96)
        from factor in Gen.Elements(0.5, 1.0, 1.25, 2.0)
        from normalize in Gen.Elements(true, false)
        from seed in Dims.Seed
        select new MoeCase(n, e, Math.Min(k, e), ch, factor, normalize, seed),
        c => Dims.Shrink(c, [c.N, c.C], d => c with { N = d[0], C = d[1] }));

    /// <summary>probs [N, E]: each row a permutation of levels 1..E plus jitter in [0, 0.3), normalized to sum 1.</summary>
    public double[] Probs(Rng rng)
    {
        var p = new double[N * E];
        for (int n = 0; n < N; n++)
        {
            var levels = Enumerable.Range(1, E).ToArray();
            for (int i = E - 1; i > 0; i--) { int j = rng.NextInt(i + 1); (levels[i], levels[j]) = (levels[j], levels[i]); }
            double sum = 0;
            for (int e = 0; e < E; e++) sum += p[n * E + e] = levels[e] + 0.3 * rng.NextDouble();
            for (int e = 0; e < E; e++) p[n * E + e] /= sum;
        }
        return p;
    }

    /// <summary>The oracle's routing of <see cref="Probs"/>: probs (rounded to f32, as the subjects get them), experts, slots, gates.</summary>
    public (double[] Probs, int[] Experts, int[] Slots, double[] Gates) Route(Rng rng)
    {
        var probs = Probs(rng).Select(p => (double)(float)p).ToArray();
        var experts = Oracle.Backend.Allocate(DType.I32, [N, K]);
        var slots = Oracle.Backend.Allocate(DType.I32, [N, K]);
        var gates = Oracle.Zeros(N, K);
        Oracle.Backend.MoeRoute(Oracle.Tensor(probs, N, E), Capacity, Normalize, experts, slots, gates, Oracle.Zeros(E));
        int[] e = new int[N * K], s = new int[N * K];
        Oracle.Backend.Download<int>(experts, e);
        Oracle.Backend.Download<int>(slots, s);
        return (probs, e, s, Oracle.Read(gates).Select(g => (double)(float)g).ToArray());
    }
}

public static class MoeChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("MoeRoute", "Forward", MoeCase.Arbitrary(), RouteForward),
        OpProperty.Of("MoeRoute", "Backward", MoeCase.Arbitrary(), RouteBackward),
        OpProperty.Of("MoeRoute", "BackwardMatchesFiniteDifferences", MoeCase.Arbitrary(), RouteFiniteDifferences, 30, definitionOnly: true),
        OpProperty.Of("MoeDispatch", "Forward", MoeCase.Arbitrary(), DispatchForward),
        OpProperty.Of("MoeDispatch", "Backward", MoeCase.Arbitrary(), DispatchBackward),
        OpProperty.Of("MoeDispatch", "BackwardMatchesFiniteDifferences", MoeCase.Arbitrary(), DispatchFiniteDifferences, 30, definitionOnly: true),
        OpProperty.Of("MoeCombine", "Forward", MoeCase.Arbitrary(), CombineForward),
        OpProperty.Of("MoeCombine", "Backward", MoeCase.Arbitrary(), CombineBackward),
        OpProperty.Of("MoeCombine", "BackwardMatchesFiniteDifferences", MoeCase.Arbitrary(), CombineFiniteDifferences, 30, definitionOnly: true),
    ];

    /// <summary>experts and slots must equal the oracle's exactly; gates are one f32 division (or none); load is count/N.</summary>
    public static void RouteForward(MoeCase c, CheckContext context)
    {
        var check = new OpCheck("MoeRoute", c, c.Seed, context);
        var probs = check.Input("probs", [c.N, c.E], c.Probs(check.Rng).Select(p => (double)(float)p).ToArray());
        var experts = check.IdsOutput("experts", [c.N, c.K]);
        var slots = check.IdsOutput("slots", [c.N, c.K]);
        var gates = check.Output("gates", [c.N, c.K], Tolerance.Elementwise);
        var load = check.Output("load", [c.E], Tolerance.Elementwise);
        check.Run((b, t) => b.MoeRoute(t(probs), c.Capacity, c.Normalize, t(experts), t(slots), t(gates), t(load)));
    }

    /// <summary>(dg_j − Σ dg·g)/S: a k-term sum and a division per chosen entry; the rest of dProbs keeps its pre-fill.</summary>
    public static void RouteBackward(MoeCase c, CheckContext context)
    {
        var check = new OpCheck("MoeRouteBackward", c, c.Seed, context);
        var (probValues, expertValues, _, _) = c.Route(check.Rng);
        var dGates = check.Input("dGates", [c.N, c.K], Values.Normal(check.Rng, c.N * c.K));
        var probs = check.Input("probs", [c.N, c.E], probValues);
        var experts = check.Ids("experts", [c.N, c.K], expertValues);
        // the increment (dg − Σ dg·g)/S reaches E/K times dg when S ~ K/E: that size is its scale
        var dProbs = check.InOut("dProbs", [c.N, c.E], Values.Normal(check.Rng, c.N * c.E), Tolerance.Sum, 1.0 + c.E);
        check.Run((b, t) => b.MoeRouteBackward(t(dGates), t(probs), t(experts), c.Normalize, t(dProbs)));
    }

    public static void RouteFiniteDifferences(MoeCase c, CheckContext context)
    {
        c = c with { N = Math.Min(c.N, 6), E = Math.Min(c.E, 8), K = Math.Min(c.K, Math.Min(c.E, 8)) };
        var rng = new Rng((ulong)c.Seed);
        var p = c.Probs(rng);
        var w = Values.Normal(rng, c.N * c.K);
        var prefill = Values.Normal(rng, p.Length);
        var probs = Oracle.Tensor(p, c.N, c.E);
        var experts = Oracle.Backend.Allocate(DType.I32, [c.N, c.K]);
        var slots = Oracle.Backend.Allocate(DType.I32, [c.N, c.K]);
        var gates = Oracle.Zeros(c.N, c.K);
        var load = Oracle.Zeros(c.E);
        int[] Chosen() { var e = new int[c.N * c.K]; Oracle.Backend.Download<int>(experts, e); return e; }
        Oracle.Backend.MoeRoute(probs, c.Capacity, c.Normalize, experts, slots, gates, load);
        var chosen = Chosen();
        double[] Forward(double[] xs)
        {
            Oracle.Write(probs, xs);
            Oracle.Backend.MoeRoute(probs, c.Capacity, c.Normalize, experts, slots, gates, load);
            if (!Chosen().SequenceEqual(chosen)) throw new OpCheckException($"MoeRoute: a finite-difference step changed the routing\n  case: {c}");
            return Oracle.Read(gates);
        }
        Forward(p);
        var dProbs = Oracle.Tensor(prefill, c.N, c.E);
        Oracle.Backend.MoeRouteBackward(Oracle.Tensor(w, c.N, c.K), probs, experts, c.Normalize, dProbs);
        FiniteDifferences.Check("MoeRouteBackward", "probs", c, p, Forward, w, Oracle.Delta(Oracle.Read(dProbs), prefill), rng,
            roundingMagnitude: _ => FiniteDifferences.Step * prefill.Sum(Math.Abs));
    }

    /// <summary>Copies: exact. Rows no token took must be written 0 (the NaN pre-fill would show).</summary>
    public static void DispatchForward(MoeCase c, CheckContext context)
    {
        var check = new OpCheck("MoeDispatch", c, c.Seed, context);
        var (_, _, slotValues, _) = c.Route(check.Rng);
        var input = check.Input("input", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C));
        var slots = check.Ids("slots", [c.N, c.K], slotValues);
        var output = check.Output("output", [c.Rows, c.C], Tolerance.Exact);
        check.Run((b, t) => b.MoeDispatch(t(input), t(slots), t(output)));
    }

    /// <summary>dInput += the sum of ≤ k rows: a few f32 additions per element.</summary>
    public static void DispatchBackward(MoeCase c, CheckContext context)
    {
        var check = new OpCheck("MoeDispatchBackward", c, c.Seed, context);
        var (_, _, slotValues, _) = c.Route(check.Rng);
        var dOutput = check.Input("dOutput", [c.Rows, c.C], Values.Normal(check.Rng, c.Rows * c.C));
        var slots = check.Ids("slots", [c.N, c.K], slotValues);
        var dInput = check.InOut("dInput", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C), Tolerance.Sum, Math.Sqrt(1 + c.K));
        check.Run((b, t) => b.MoeDispatchBackward(t(dOutput), t(slots), t(dInput)));
    }

    public static void DispatchFiniteDifferences(MoeCase c, CheckContext context)
    {
        c = c with { N = Math.Min(c.N, 8), C = Math.Min(c.C, 5) };
        var rng = new Rng((ulong)c.Seed);
        var (_, _, slotValues, _) = c.Route(rng);
        var x = Values.Normal(rng, c.N * c.C);
        var w = Values.Normal(rng, c.Rows * c.C);
        var prefill = Values.Normal(rng, x.Length);
        var input = Oracle.Tensor(x, c.N, c.C);
        var slots = Oracle.Ids(slotValues, c.N, c.K);
        var output = Oracle.Zeros(c.Rows, c.C);
        var dInput = Oracle.Tensor(prefill, c.N, c.C);
        Oracle.Backend.MoeDispatchBackward(Oracle.Tensor(w, c.Rows, c.C), slots, dInput);
        FiniteDifferences.Check("MoeDispatchBackward", "input", c, x, Oracle.Through(input, x, () => Oracle.Backend.MoeDispatch(input, slots, output), output),
            w, Oracle.Delta(Oracle.Read(dInput), prefill), rng, roundingMagnitude: _ => FiniteDifferences.Step * prefill.Sum(Math.Abs));
    }

    /// <summary>output = Σ of ≤ k gate-weighted rows: a few products and sums per element.</summary>
    public static void CombineForward(MoeCase c, CheckContext context)
    {
        var check = new OpCheck("MoeCombine", c, c.Seed, context);
        var (_, _, slotValues, gateValues) = c.Route(check.Rng);
        var expertOutput = check.Input("expertOutput", [c.Rows, c.C], Values.Normal(check.Rng, c.Rows * c.C));
        var slots = check.Ids("slots", [c.N, c.K], slotValues);
        var gates = check.Input("gates", [c.N, c.K], gateValues);
        var output = check.Output("output", [c.N, c.C], Tolerance.Sum);
        check.Run((b, t) => b.MoeCombine(t(expertOutput), t(slots), t(gates), t(output)));
    }

    /// <summary>dExpertOutput += g·dy (one product and sum); dGates += a dot product over C channels.</summary>
    public static void CombineBackward(MoeCase c, CheckContext context)
    {
        var check = new OpCheck("MoeCombineBackward", c, c.Seed, context);
        var (_, _, slotValues, gateValues) = c.Route(check.Rng);
        var dOutput = check.Input("dOutput", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C));
        var expertOutput = check.Input("expertOutput", [c.Rows, c.C], Values.Normal(check.Rng, c.Rows * c.C));
        var slots = check.Ids("slots", [c.N, c.K], slotValues);
        var gates = check.Input("gates", [c.N, c.K], gateValues);
        var dExpert = check.InOut("dExpertOutput", [c.Rows, c.C], Values.Normal(check.Rng, c.Rows * c.C), Tolerance.Elementwise, Math.Sqrt(2));
        var dGates = check.InOut("dGates", [c.N, c.K], Values.Normal(check.Rng, c.N * c.K), Tolerance.MatMul, Math.Sqrt(1 + c.C));
        check.Run((b, t) => b.MoeCombineBackward(t(dOutput), t(expertOutput), t(slots), t(gates), t(dExpert), t(dGates)));
    }

    public static void CombineFiniteDifferences(MoeCase c, CheckContext context)
    {
        c = c with { N = Math.Min(c.N, 8), C = Math.Min(c.C, 5) };
        var rng = new Rng((ulong)c.Seed);
        var (_, _, slotValues, gateValues) = c.Route(rng);
        var eo = Values.Normal(rng, c.Rows * c.C);
        var w = Values.Normal(rng, c.N * c.C);
        double[] prefillE = Values.Normal(rng, eo.Length), prefillG = Values.Normal(rng, gateValues.Length);
        var expertOutput = Oracle.Tensor(eo, c.Rows, c.C);
        var slots = Oracle.Ids(slotValues, c.N, c.K);
        var gates = Oracle.Tensor(gateValues, c.N, c.K);
        var output = Oracle.Zeros(c.N, c.C);
        var dExpert = Oracle.Tensor(prefillE, c.Rows, c.C);
        var dGates = Oracle.Tensor(prefillG, c.N, c.K);
        Oracle.Backend.MoeCombineBackward(Oracle.Tensor(w, c.N, c.C), expertOutput, slots, gates, dExpert, dGates);
        void Run() => Oracle.Backend.MoeCombine(expertOutput, slots, gates, output);
        FiniteDifferences.Check("MoeCombineBackward", "expertOutput", c, eo, Oracle.Through(expertOutput, eo, Run, output), w,
            Oracle.Delta(Oracle.Read(dExpert), prefillE), rng, roundingMagnitude: _ => FiniteDifferences.Step * prefillE.Sum(Math.Abs));
        FiniteDifferences.Check("MoeCombineBackward", "gates", c, gateValues, Oracle.Through(gates, gateValues, Run, output), w,
            Oracle.Delta(Oracle.Read(dGates), prefillG), rng, roundingMagnitude: _ => FiniteDifferences.Step * prefillG.Sum(Math.Abs));
    }
}
