using FsCheck;
using FsCheck.Fluent;

namespace Llm.Checks;

/// <summary>
/// One property of one op: cases drawn from a generator, each checked on every subject of a
/// <see cref="CheckContext"/>. The first failing case is shrunk (smaller shapes, same seed and flags) until no
/// smaller one fails. Cases are drawn from <c>seed</c> alone, so the same seed replays the same run.
/// </summary>
public sealed class OpProperty
{
    private readonly Func<CheckContext, ulong, int, PropertyResult> _run;

    private OpProperty(string op, string name, int cases, bool definitionOnly, Func<OpProperty, CheckContext, ulong, int, PropertyResult> run)
    {
        Op = op; Name = name; Cases = cases; DefinitionOnly = definitionOnly;
        _run = (context, seed, count) => run(this, context, seed, count);
    }

    public string Op { get; }
    public string Name { get; }
    /// <summary>"Op.Name", what --ops matches.</summary>
    public string FullName => $"{Op}.{Name}";
    /// <summary>Cases per run unless the caller says otherwise (fewer for the slow finite-difference checks).</summary>
    public int Cases { get; }
    /// <summary>The definition against fp64 finite differences: no subject backend takes part.</summary>
    public bool DefinitionOnly { get; }
    public override string ToString() => FullName;

    public static OpProperty Of<T>(string op, string name, Arbitrary<T> generator, Action<T, CheckContext> check,
        int cases = 100, bool definitionOnly = false) where T : notnull =>
        new(op, name, cases, definitionOnly, (self, context, seed, count) =>
        {
            // size 100: the generators draw dimensions from their own ranges, not from FsCheck's size
            T[] drawn = Gen.Sample(generator.Generator, count, new Rnd(seed), 100);
            for (int i = 0; i < drawn.Length; i++)
            {
                if (Fails(drawn[i], check, context) is not { } failure) continue;
                var (shrunk, message, steps) = Shrink(drawn[i], failure, generator, check, context);
                return new PropertyResult(self, i + 1, seed, drawn[i], shrunk, steps, message);
            }
            return new PropertyResult(self, drawn.Length, seed, null, null, 0, null);
        });

    /// <summary>Runs <paramref name="cases"/> cases (default <see cref="Cases"/>) drawn from <paramref name="seed"/>.</summary>
    public PropertyResult Run(CheckContext context, ulong seed, int? cases = null) => _run(context, seed, cases ?? Cases);

    private static string? Fails<T>(T value, Action<T, CheckContext> check, CheckContext context)
    {
        try
        {
            check(value, context);
            return null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return e is OpCheckException ? e.Message : $"{e.GetType().Name}: {e.Message}\n  case: {value}";
        }
    }

    /// <summary>Greedy: take the first smaller candidate that still fails, until none does (at most 100 steps).</summary>
    private static (T, string, int) Shrink<T>(T value, string message, Arbitrary<T> generator, Action<T, CheckContext> check, CheckContext context)
    {
        int steps = 0;
        for (bool smaller = true; smaller && steps < 100;)
        {
            smaller = false;
            foreach (var candidate in generator.Shrinker(value))
                if (Fails(candidate, check, context) is { } m)
                {
                    (value, message, smaller) = (candidate, m, true);
                    steps++;
                    break;
                }
        }
        return (value, message, steps);
    }
}

/// <summary>The outcome of one <see cref="OpProperty.Run"/>: how many cases ran and, on failure, the first failing
/// case, its shrunk form and the failure's message (which names op, subject, buffer, element and case).</summary>
public sealed record PropertyResult(OpProperty Property, int CasesRun, ulong Seed, object? Failed, object? Shrunk, int ShrinkSteps, string? Message)
{
    public bool Passed => Message is null;

    /// <summary>The command that replays this run.</summary>
    public string Replay => $"llm conformance --ops {Property.FullName} --seed {Seed} --cases {CasesRun}";

    public override string ToString() => Passed
        ? $"{Property.FullName}: {CasesRun} cases passed (seed {Seed})"
        : $"{Property.FullName}: case {CasesRun} failed; shrunk in {ShrinkSteps} steps to {Shrunk} (from {Failed}):\n{Message}\nreplay: {Replay}";
}
