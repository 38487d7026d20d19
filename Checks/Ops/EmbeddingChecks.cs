using FsCheck;
using FsCheck.Fluent;
using Llm.Common;

namespace Llm.Checks.Ops;

/// <summary>N ids into a [V, C] table. N > V forces repeated ids (the scatter-add collisions of backward).</summary>
public sealed record EmbeddingCase(int N, int V, int C, int Seed)
{
    public override string ToString() => $"ids[{N}] table{Dims.Shape(V, C)} seed={Seed}";

    public static Arbitrary<EmbeddingCase> Arbitrary() => Arb.From(
        from n in Dims.Dim(600)
        from v in Dims.Dim(300)
        from c in Dims.Dim(800)
        from seed in Dims.Seed
        let d = Dims.Fit([n, v, c], d => (long)(d[0] + d[1]) * d[2], 120_000)
        select new EmbeddingCase(d[0], d[1], d[2], seed),
        c => Dims.Shrink(c, [c.N, c.V, c.C], d => c with { N = d[0], V = d[1], C = d[2] }));
}

public static class EmbeddingChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Embedding", "Forward", EmbeddingCase.Arbitrary(), Forward),
        OpProperty.Of("Embedding", "Backward", EmbeddingCase.Arbitrary(), Backward),
        OpProperty.Of("Embedding", "BackwardMatchesFiniteDifferences", EmbeddingCase.Arbitrary(), BackwardMatchesFiniteDifferences, 20, definitionOnly: true),
    ];

    public static void Forward(EmbeddingCase c, CheckContext context)
    {
        var check = new OpCheck("Embedding", c, c.Seed, context);
        var ids = check.Ids("ids", [c.N], Values.Ids(check.Rng, c.N, c.V));
        var table = check.Input("table", [c.V, c.C], Values.Normal(check.Rng, c.V * c.C));
        var output = check.Output("output", [c.N, c.C], Tolerance.Exact);
        check.Run((b, t) => b.Embedding(t(ids), t(table), t(output)));
    }

    /// <summary>Scatter-add: rows hit by several ids sum in f32 in any order, hence <see cref="Tolerance.Sum"/>.</summary>
    public static void Backward(EmbeddingCase c, CheckContext context)
    {
        var check = new OpCheck("EmbeddingBackward", c, c.Seed, context);
        var dOutput = check.Input("dOutput", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C));
        var ids = check.Ids("ids", [c.N], Values.Ids(check.Rng, c.N, c.V));
        // a row hit by k ids sums k unit rows of dOutput, k ≈ N/V on average
        var dTable = check.InOut("dTable", [c.V, c.C], Values.Normal(check.Rng, c.V * c.C), Tolerance.Sum, Math.Sqrt(Math.Max(1.0, (double)c.N / c.V)));
        check.Run((b, t) => b.EmbeddingBackward(t(dOutput), t(ids), t(dTable)));
    }

    public static void BackwardMatchesFiniteDifferences(EmbeddingCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        int n = Math.Min(c.N, 12), v = Math.Min(c.V, 7), ch = Math.Min(c.C, 9);
        var idValues = Values.Ids(rng, n, v);
        var tableValues = Values.Normal(rng, v * ch);
        var w = Values.Normal(rng, n * ch);
        var prefill = Values.Normal(rng, v * ch);
        var ids = Oracle.Ids(idValues, n);
        var table = Oracle.Tensor(tableValues, v, ch);
        var output = Oracle.Zeros(n, ch);
        double[] Forward(double[] xs)
        {
            Oracle.Write(table, xs);
            Oracle.Backend.Embedding(ids, table, output);
            return Oracle.Read(output);
        }
        var dTable = Oracle.Tensor(prefill, v, ch);
        Oracle.Backend.EmbeddingBackward(Oracle.Tensor(w, n, ch), ids, dTable);
        FiniteDifferences.Check("EmbeddingBackward", "table", c, tableValues, Forward, w, Oracle.Delta(Oracle.Read(dTable), prefill), rng);
    }
}
