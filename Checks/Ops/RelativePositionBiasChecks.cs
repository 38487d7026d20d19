using FsCheck;
using FsCheck.Fluent;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>A [NB, NH] table read at [Tq, Tk] bucket ids. Tq·Tk ≫ NB forces many positions per bucket (the sums of backward).</summary>
public sealed record RelativePositionBiasCase(int Tq, int Tk, int NB, int NH, int Seed)
{
    public override string ToString() => $"table{Dims.Shape(NB, NH)} buckets{Dims.Shape(Tq, Tk)} seed={Seed}";

    public static Arbitrary<RelativePositionBiasCase> Arbitrary() => Arb.From(
        from tq in Dims.Dim(70)
        from tk in Dims.Dim(70)
        from nb in Dims.Dim(40)
        from nh in Dims.Dim(12)
        from seed in Dims.Seed
        let d = Dims.Fit([tq, tk, nb, nh], d => (long)d[0] * d[1] * d[3], 40_000)
        select new RelativePositionBiasCase(d[0], d[1], d[2], d[3], seed),
        c => Dims.Shrink(c, [c.Tq, c.Tk, c.NB, c.NH], d => c with { Tq = d[0], Tk = d[1], NB = d[2], NH = d[3] }));
}

public static class RelativePositionBiasChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("RelativePositionBias", "Forward", RelativePositionBiasCase.Arbitrary(), Forward),
        OpProperty.Of("RelativePositionBias", "Backward", RelativePositionBiasCase.Arbitrary(), Backward),
        OpProperty.Of("RelativePositionBias", "BackwardMatchesFiniteDifferences", RelativePositionBiasCase.Arbitrary(), BackwardMatchesFiniteDifferences, 20, definitionOnly: true),
        OpProperty.Of("RelativePositionBias", "RejectsBucketsOutOfRange", RelativePositionBiasCase.Arbitrary(), RejectsBucketsOutOfRange, 10),
    ];

    public static void Forward(RelativePositionBiasCase c, CheckContext context)
    {
        var check = new OpCheck("RelativePositionBias", c, c.Seed, context);
        var table = check.Input("table", [c.NB, c.NH], Values.Normal(check.Rng, c.NB * c.NH));
        var buckets = check.Ids("buckets", [c.Tq, c.Tk], Values.Ids(check.Rng, c.Tq * c.Tk, c.NB));
        var output = check.Output("output", [c.NH, c.Tq, c.Tk], Tolerance.Exact);   // a gather: nothing rounds
        check.Run((b, t) => b.RelativePositionBias(t(table), t(buckets), t(output)));
    }

    /// <summary>Each bucket sums about P/NB unit-variance terms per head in f32, in position order on the CPU and in a
    /// fixed tree on a GPU: <see cref="Tolerance.Sum"/> at the scale √(P/NB) of those sums.</summary>
    public static void Backward(RelativePositionBiasCase c, CheckContext context)
    {
        var check = new OpCheck("RelativePositionBiasBackward", c, c.Seed, context);
        int positions = c.Tq * c.Tk;
        var dOutput = check.Input("dOutput", [c.NH, c.Tq, c.Tk], Values.Normal(check.Rng, c.NH * positions));
        var buckets = check.Ids("buckets", [c.Tq, c.Tk], Values.Ids(check.Rng, positions, c.NB));
        var dTable = check.InOut("dTable", [c.NB, c.NH], Values.Normal(check.Rng, c.NB * c.NH), Tolerance.Sum,
            Math.Sqrt(Math.Max(1.0, (double)positions / c.NB)));
        check.Run((b, t) => b.RelativePositionBiasBackward(t(dOutput), t(buckets), t(dTable)));
    }

    public static void BackwardMatchesFiniteDifferences(RelativePositionBiasCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        int tq = Math.Min(c.Tq, 6), tk = Math.Min(c.Tk, 7), nb = Math.Min(c.NB, 5), nh = Math.Min(c.NH, 3);
        var bucketValues = Values.Ids(rng, tq * tk, nb);
        var tableValues = Values.Normal(rng, nb * nh);
        var w = Values.Normal(rng, nh * tq * tk);
        var prefill = Values.Normal(rng, nb * nh);
        var buckets = Oracle.Ids(bucketValues, tq, tk);
        var table = Oracle.Tensor(tableValues, nb, nh);
        var output = Oracle.Zeros(nh, tq, tk);
        double[] Forward(double[] xs)
        {
            Oracle.Write(table, xs);
            Oracle.Backend.RelativePositionBias(table, buckets, output);
            return Oracle.Read(output);
        }
        var dTable = Oracle.Tensor(prefill, nb, nh);
        Oracle.Backend.RelativePositionBiasBackward(Oracle.Tensor(w, nh, tq, tk), buckets, dTable);
        FiniteDifferences.Check("RelativePositionBiasBackward", "table", c, tableValues, Forward, w, Oracle.Delta(Oracle.Read(dTable), prefill), rng);
    }

    /// <summary>One bucket id outside [0, NB) (NB itself or −1), at a random position: forward and backward each throw,
    /// on the definition and on every subject (a device reports it at its next Synchronize), naming the id and [i, j].</summary>
    public static void RejectsBucketsOutOfRange(RelativePositionBiasCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        var ids = Values.Ids(rng, c.Tq * c.Tk, c.NB);
        int at = rng.NextInt(ids.Length), bad = rng.NextInt(2) == 0 ? c.NB : -1;
        ids[at] = bad;
        string expected = $"bucket id {bad} at position [{at / c.Tk}, {at % c.Tk}] is outside [0, {c.NB})";
        foreach (var (backend, dtype, name) in context.Subjects.Select(s => (s.Backend, s.DType, s.Name)).Prepend((Oracle.Backend, DType.F64, "oracle")))
        {
            var buckets = backend.Allocate(DType.I32, [c.Tq, c.Tk]);
            backend.Upload<int>(ids, buckets);
            var table = backend.Allocate(dtype, [c.NB, c.NH]);
            var biases = backend.Allocate(dtype, [c.NH, c.Tq, c.Tk]);
            foreach (var (op, run) in new (string, Action)[]
                     {
                         ("RelativePositionBias", () => backend.RelativePositionBias(table, buckets, biases)),
                         ("RelativePositionBiasBackward", () => backend.RelativePositionBiasBackward(biases, buckets, table)),
                     })
            {
                try
                {
                    run();
                    backend.Synchronize();
                }
                catch (ArgumentOutOfRangeException e) when (e.Message.Contains(expected))
                {
                    continue;
                }
                catch (Exception e)
                {
                    throw new OpCheckException($"{op} on {name}: expected an ArgumentOutOfRangeException saying \"{expected}\", got {e.GetType().Name}: {e.Message}\n  case: {c}", e);
                }
                throw new OpCheckException($"{op} on {name}: accepted {expected}\n  case: {c}");
            }
            backend.Release(buckets);
            backend.Release(table);
            backend.Release(biases);
        }
    }
}
