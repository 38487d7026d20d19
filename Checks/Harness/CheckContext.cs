namespace Llm.Checks;

/// <summary>
/// Where a check runs and what it saw: the subject backends (each compared with the F64 oracle) and, per op,
/// subject and buffer, the worst per-element error and NMSE as fractions of their bounds (1 = at the bound).
/// The xunit suite and `llm conformance` each make one; the CLI prints its <see cref="Worst"/> table.
/// </summary>
public sealed class CheckContext(IReadOnlyList<Subject> subjects)
{
    public IReadOnlyList<Subject> Subjects { get; } = subjects;

    /// <summary>The worst seen of one op's buffer on one subject: per-element error and NMSE as fractions of their
    /// bounds (the NMSE bound includes the floor and any allowed rounding), and the NMSE itself.</summary>
    public sealed record Seen(string Op, string Subject, string Buffer, double ElementRatio, double NmseRatio, double Nmse, Tolerance Tolerance);

    private readonly Dictionary<(string, string, string), Seen> _worst = [];

    public void Record(string op, string subject, string buffer, double elementRatio, double nmseRatio, double nmse, Tolerance tolerance)
    {
        lock (_worst)
        {
            var key = (op, subject, buffer);
            _worst[key] = _worst.TryGetValue(key, out var seen)
                ? seen with { ElementRatio = Math.Max(seen.ElementRatio, elementRatio), NmseRatio = Math.Max(seen.NmseRatio, nmseRatio), Nmse = Math.Max(seen.Nmse, nmse) }
                : new Seen(op, subject, buffer, elementRatio, nmseRatio, nmse, tolerance);
        }
    }

    public IReadOnlyList<Seen> Worst
    {
        get { lock (_worst) return [.. _worst.Values.OrderBy(s => s.Op).ThenBy(s => s.Subject).ThenBy(s => s.Buffer)]; }
    }

    /// <summary>Forgets what was seen (the CLI reads it per property).</summary>
    public void Clear()
    {
        lock (_worst) _worst.Clear();
    }
}
