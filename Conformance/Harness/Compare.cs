namespace Llm.Conformance.Harness;

/// <summary>Subject-versus-oracle comparison by normalized mean squared error.</summary>
public static class Compare
{
    /// <summary>NMSE = Σ(a − b)² / Σb²; 0 when both are all zero, +∞ when only the oracle is.</summary>
    public static double Nmse(ReadOnlySpan<double> subject, ReadOnlySpan<double> oracle)
    {
        double num = 0, den = 0;
        for (int i = 0; i < oracle.Length; i++)
        {
            double d = subject[i] - oracle[i];
            num += d * d;
            den += oracle[i] * oracle[i];
        }
        return den > 0 ? num / den : num == 0 ? 0 : double.PositiveInfinity;
    }

    /// <summary>Fails unless every subject value is finite where the oracle's is, and NMSE ≤ the tolerance.
    /// The message carries op, buffer, NMSE, bound, the worst element and the case (with its seed).</summary>
    public static void Nmse(string op, string buffer, double[] subject, double[] oracle, Tolerance tolerance, object testCase)
    {
        if (subject.Length != oracle.Length)
            throw new OpCheckException($"{op}: {buffer} has {subject.Length} elements, oracle {oracle.Length}");
        int nonFinite = 0, first = -1;
        for (int i = 0; i < subject.Length; i++)
            if (!double.IsFinite(subject[i]) && double.IsFinite(oracle[i]) && nonFinite++ == 0) first = i;
        if (nonFinite > 0)
            throw new OpCheckException($"{op}: {buffer} has {nonFinite} non-finite element(s) where the oracle is finite " +
                $"(NaN left means never written); first [{first}] = {subject[first]}, oracle {oracle[first]}\n  case: {testCase}");
        double nmse = Nmse(subject, oracle);
        ConformanceLog.Record(op, buffer, nmse);
        double sumSq = 0, errSq = 0;
        for (int i = 0; i < oracle.Length; i++) { sumSq += oracle[i] * oracle[i]; errSq += (subject[i] - oracle[i]) * (subject[i] - oracle[i]); }
        bool withinFloor = tolerance.Floor > 0 && errSq <= tolerance.Nmse * sumSq + oracle.Length * tolerance.Floor * tolerance.Floor;
        if (!(nmse <= tolerance.Nmse) && !withinFloor)
        {
            int worst = 0;
            for (int i = 1; i < subject.Length; i++)
                if (Math.Abs(subject[i] - oracle[i]) > Math.Abs(subject[worst] - oracle[worst])) worst = i;
            throw new OpCheckException($"{op}: {buffer} NMSE {nmse:E3} exceeds {tolerance}; worst element [{worst}] " +
                $"subject {subject[worst]:R} oracle {oracle[worst]:R} (of {subject.Length})\n  case: {testCase}");
        }
    }

    public static void RequireFinite(string op, string buffer, double[] values, object testCase)
    {
        int i = Array.FindIndex(values, v => !double.IsFinite(v));
        if (i >= 0)
            throw new OpCheckException($"{op}: {buffer}[{i}] = {values[i]} (not finite or never written)\n  case: {testCase}");
    }
}

/// <summary>With CONFORMANCE_NMSE_LOG=path set, appends the largest NMSE seen per op and buffer at exit: the
/// evidence behind the <see cref="Tolerance"/> bounds.</summary>
internal static class ConformanceLog
{
    private static readonly string? Path = Environment.GetEnvironmentVariable("CONFORMANCE_NMSE_LOG");
    private static readonly Dictionary<string, double> Max = [];

    static ConformanceLog()
    {
        if (Path is not null)
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                lock (Max) File.AppendAllLines(Path, Max.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}\t{kv.Value:E2}"));
            };
    }

    public static void Record(string op, string buffer, double nmse)
    {
        if (Path is null) return;
        string key = $"{op} {buffer}";
        lock (Max) Max[key] = Math.Max(Max.GetValueOrDefault(key), nmse);
    }
}
