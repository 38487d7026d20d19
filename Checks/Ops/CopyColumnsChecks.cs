using FsCheck;
using FsCheck.Fluent;

namespace Llm.Checks.Ops;

/// <summary>One CopyColumns call: a band of Width columns from source [Rows, Cs] at SourceColumn into destination [Rows, Cd] at
/// DestinationColumn, copied or accumulated.</summary>
public sealed record CopyColumnsCase(int Rows, int SourceColumns, int SourceColumn, int DestinationColumns, int DestinationColumn,
    int Width, bool Accumulate, int Seed)
{
    public int[] SourceShape => [Rows, SourceColumns];
    public int[] DestinationShape => [Rows, DestinationColumns];
    public override string ToString() =>
        $"source{Dims.Shape(SourceShape)}@{SourceColumn} destination{Dims.Shape(DestinationShape)}@{DestinationColumn} width={Width} accumulate={Accumulate} seed={Seed}";

    public static Arbitrary<CopyColumnsCase> Arbitrary() => Arb.From(
        from rows in Dims.Dim(3000)
        from width in Dims.Dim(300)
        from sourceColumn in Gen.Choose(0, 40)
        from sourceExtra in Gen.Frequency((1, Gen.Constant(0)), (3, Gen.Choose(0, 600)))
        from destinationColumn in Gen.Choose(0, 40)
        from destinationExtra in Gen.Frequency((1, Gen.Constant(0)), (3, Gen.Choose(0, 600)))
        from accumulate in Gen.Elements(false, true)
        from seed in Dims.Seed
        let d = Dims.Fit([rows, width], d => (long)d[0] * (d[1] + 640), 400_000)
        select new CopyColumnsCase(d[0], sourceColumn + d[1] + sourceExtra, sourceColumn, destinationColumn + d[1] + destinationExtra,
            destinationColumn, d[1], accumulate, seed),
        Shrink);

    private static IEnumerable<CopyColumnsCase> Shrink(CopyColumnsCase c)
    {
        foreach (int rows in Dims.ShrinkDim(c.Rows)) yield return c with { Rows = rows };
        foreach (int w in Dims.ShrinkDim(c.Width))
            yield return c with { Width = w, SourceColumns = c.SourceColumns - c.Width + w, DestinationColumns = c.DestinationColumns - c.Width + w };
    }
}

public static class CopyColumnsChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("CopyColumns", "Forward", CopyColumnsCase.Arbitrary(), Forward),
    ];

    /// <summary>Values are multiples of 2⁻⁸ below 2⁸ in size, so a sum of two is exact in f32 as in f64: copy and accumulate
    /// compare exactly, and the columns outside the band must keep their prefill.</summary>
    public static void Forward(CopyColumnsCase c, CheckContext context)
    {
        var check = new OpCheck("CopyColumns", c, c.Seed, context);
        double[] Dyadic(int n) => [.. Values.Uniform(check.Rng, n, -100, 100).Select(x => Math.Round(x * 256) / 256)];
        var source = check.Input("source", c.SourceShape, Dyadic(c.Rows * c.SourceColumns));
        var destination = check.InOut("destination", c.DestinationShape, Dyadic(c.Rows * c.DestinationColumns), Tolerance.Exact);
        check.Run((b, t) => b.CopyColumns(t(source), c.SourceColumn, t(destination), c.DestinationColumn, c.Width, c.Accumulate));
    }
}
