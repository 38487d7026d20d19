using Llm.Checks;
using Llm.Conformance.Harness;
using Xunit;

namespace Llm.Conformance.Ops;

/// <summary>
/// The catalogue's properties (<see cref="Catalogue"/>), the same checks `llm conformance` runs, on every subject of
/// <see cref="Backends.Context"/>. One class per op, so that xunit runs ops in parallel. The seed is drawn per run
/// (CONFORMANCE_SEED=S fixes it) and printed with the replay command when a property fails.
/// </summary>
public abstract class OpPropertyTests
{
    private static readonly ulong RunSeed = ulong.TryParse(Environment.GetEnvironmentVariable("CONFORMANCE_SEED"), out var s)
        ? s : (ulong)Random.Shared.NextInt64(1, long.MaxValue);

    protected static TheoryData<string> Of(params string[] ops)
    {
        var data = new TheoryData<string>();
        foreach (var p in Catalogue.All.Where(p => ops.Contains(p.Op))) data.Add(p.FullName);
        return data;
    }

    protected static void Holds(string property)
    {
        var p = Catalogue.All.Single(x => x.FullName == property);
        var result = p.Run(Backends.Context, RunSeed);
        Assert.True(result.Passed, result.ToString());
    }
}

public sealed class EmbeddingTests : OpPropertyTests
{
    public static TheoryData<string> Properties => Of("Embedding");
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class MatMulTests : OpPropertyTests
{
    public static TheoryData<string> Properties => Of("MatMul");
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class LayerNormTests : OpPropertyTests
{
    public static TheoryData<string> Properties => Of("LayerNorm");
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class GeluTests : OpPropertyTests
{
    public static TheoryData<string> Properties => Of("Gelu");
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class ResidualTests : OpPropertyTests
{
    public static TheoryData<string> Properties => Of("Add", "Accumulate", "Scale", "SumOfSquares");
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class AttentionTests : OpPropertyTests
{
    public static TheoryData<string> Properties => Of("Attention");
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class CrossEntropyTests : OpPropertyTests
{
    public static TheoryData<string> Properties => Of("CrossEntropy");
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class AdamWTests : OpPropertyTests
{
    public static TheoryData<string> Properties => Of("AdamW");
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}
