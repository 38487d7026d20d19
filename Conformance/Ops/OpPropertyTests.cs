using Llm.Checks;
using Llm.Conformance.Harness;
using Xunit;

namespace Llm.Conformance.Ops;

/// <summary>
/// The catalogue's properties (<see cref="Catalogue"/>), the same checks `llm conformance` runs, on every subject of
/// <see cref="Backends.Context"/>. xunit runs test classes in parallel, not the rows of one theory, so the catalogue
/// is dealt round-robin into four classes; a new op needs only its line in the catalogue. The seed is drawn per run
/// (CONFORMANCE_SEED=S fixes it) and printed with the replay command when a property fails.
/// </summary>
public abstract class OpPropertyTests
{
    private const int Shards = 4;

    private static readonly ulong RunSeed = ulong.TryParse(Environment.GetEnvironmentVariable("CONFORMANCE_SEED"), out var s)
        ? s : (ulong)Random.Shared.NextInt64(1, long.MaxValue);

    protected static TheoryData<string> Shard(int shard)
    {
        var data = new TheoryData<string>();
        for (int i = shard; i < Catalogue.All.Count; i += Shards) data.Add(Catalogue.All[i].FullName);
        return data;
    }

    protected static void Holds(string property)
    {
        var p = Catalogue.All.Single(x => x.FullName == property);
        var result = p.Run(Backends.Context, RunSeed);
        Assert.True(result.Passed, result.ToString());
    }
}

public sealed class OpProperties0 : OpPropertyTests
{
    public static TheoryData<string> Properties => Shard(0);
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class OpProperties1 : OpPropertyTests
{
    public static TheoryData<string> Properties => Shard(1);
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class OpProperties2 : OpPropertyTests
{
    public static TheoryData<string> Properties => Shard(2);
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}

public sealed class OpProperties3 : OpPropertyTests
{
    public static TheoryData<string> Properties => Shard(3);
    [Theory, MemberData(nameof(Properties))] public void Property(string name) => Holds(name);
}
