using System.CommandLine;
using System.Text;
using System.Text.Json;
using Llm.Checks;
using Llm.IO;
using Llm.Vulkan;

namespace Llm.Tools;

/// <summary>
/// `conformance`: every op's properties (forward, backward, each device feature switch) on the chosen device against
/// the F64 definition, the checks the xunit suite runs, as a table: cases, the worst per-element error and NMSE as
/// fractions of their stated bounds, pass or fail, and for a failure its shrunk case and replay command.
/// </summary>
internal static class ConformanceCommand
{
    public static Command Create(TextWriter stdout)
    {
        var ops = Cli.Opt<string?>("--ops", "properties to run, as comma-separated globs over Op.Property (e.g. 'LayerNorm*,MatMul.Forward'); default all");
        var cases = new Option<int?>("--cases") { Description = "cases per property (default: each property's own, 5 to 100)" }.AtLeast(1);
        var seed = new Option<ulong?>("--seed") { Description = "seed the cases are drawn from (default: random, printed); the same seed replays the run" };
        var report = Cli.Opt<string?>("--report", "also write the table to this file: Markdown (.md) or JSON (.json)");
        var validation = Cli.Opt("--validation", "turn on the Khronos validation layer (Vulkan): any message fails the op", false);
        var cmd = new Command("conformance", "Check a backend's ops against the F64 definition: worst per-element error and NMSE per op.")
        { ops, cases, seed, report, validation };
        cmd.SetAction(p =>
        {
            string? reportPath = p.GetValue(report);
            if (reportPath is not null && Path.GetExtension(reportPath) is not (".md" or ".json"))
                throw new ArgumentException($"--report {reportPath}: the file must end in .md (Markdown) or .json");
            var properties = Catalogue.Matching(p.GetValue(ops));
            if (properties.Count == 0)
                throw new ArgumentException($"--ops '{p.GetValue(ops)}' matches no property; known: {string.Join(", ", Catalogue.All.Select(x => x.FullName))}");

            var (choice, reason) = Cli.ResolveBackend(p);
            int? device = p.GetValue(Cli.DeviceOption);
            if (choice == "vulkan") Cli.CheckDeviceIndex(device);
            var options = VulkanOptions.FromEnvironment() with { Validation = p.GetValue(validation) };
            if (device is not null) options = options with { DeviceIndex = device };
            var context = new CheckContext(Subject.Of(choice, options));
            ulong runSeed = p.GetValue(seed) ?? (ulong)Random.Shared.NextInt64(1, long.MaxValue);

            stdout.WriteLine($"conformance: {string.Join(", ", context.Subjects)} against the F64 definition{(reason.Length > 0 ? $" ({reason})" : "")}; seed {runSeed}");
            var rows = new List<Row>();
            var failures = new List<PropertyResult>();
            stdout.WriteLine(Row.Header);
            foreach (var property in properties)
            {
                context.Clear();
                var result = property.Run(context, runSeed, p.GetValue(cases));
                if (!result.Passed) failures.Add(result);
                foreach (var row in Row.Of(result, context))
                {
                    rows.Add(row);
                    stdout.WriteLine(row.Text);
                }
            }
            foreach (var subject in context.Subjects.Where(s => s.Created)) subject.Backend.Dispose();
            foreach (var f in failures) stdout.WriteLine($"\nFAILED {f}");
            stdout.WriteLine($"\n{properties.Count - failures.Count} of {properties.Count} properties passed on {string.Join(", ", context.Subjects)}");
            if (reportPath is not null)
            {
                string text = Path.GetExtension(reportPath) == ".json" ? Json(runSeed, context, rows, failures) : Markdown(runSeed, context, rows, failures);
                AtomicFile.WriteAllText(reportPath, text);
                stdout.WriteLine($"report: {reportPath}");
            }
            return failures.Count == 0 ? 0 : 1;
        });
        return cmd;
    }

    /// <summary>One property on one subject: its worst buffer by per-element error and by NMSE, each against its bound.</summary>
    private sealed record Row(string Property, string Subject, int Cases, string Result,
        string? ElementBuffer, double ElementRatio, double ElementBound, string? NmseBuffer, double NmseRatio, double Nmse, double NmseBound)
    {
        public const string Header = "property                                      subject              cases  element error/bound            NMSE/bound (NMSE)                     result";

        public string Text => $"{Property,-45} {Subject,-20} {Cases,5}  " +
            (ElementBuffer is null ? $"{"—",-30} {"—",-37}"
                : $"{$"{Ratio(ElementRatio)} of {ElementBound:0.#E+0} {ElementBuffer}",-30} {$"{Ratio(NmseRatio)} ({Nmse:0.0E+0}) {NmseBuffer}",-37}") +
            $" {Result}";

        /// <summary>A fraction of a bound: three decimals, or a power of ten below 0.001.</summary>
        public static string Ratio(double r) => r == 0 || r >= 1e-3 ? $"{r:0.000}" : $"{r:0.0E+0}";

        public static IEnumerable<Row> Of(PropertyResult result, CheckContext context)
        {
            string verdict = result.Passed ? "pass" : "FAIL";
            if (result.Property.DefinitionOnly)
            {
                yield return new(result.Property.FullName, "definition vs fp64 Δ", result.CasesRun, verdict, null, 0, 0, null, 0, 0, 0);
                yield break;
            }
            foreach (var subject in context.Subjects)
            {
                var seen = context.Worst.Where(s => s.Subject == subject.Name).ToList();
                if (seen.Count == 0)
                {
                    yield return new(result.Property.FullName, subject.Name, result.CasesRun, verdict, null, 0, 0, null, 0, 0, 0);
                    continue;
                }
                var byElement = seen.MaxBy(s => s.ElementRatio)!;
                var byNmse = seen.MaxBy(s => s.NmseRatio)!;
                yield return new(result.Property.FullName, subject.Name, result.CasesRun, verdict,
                    byElement.Buffer, byElement.ElementRatio, byElement.Tolerance.Element, byNmse.Buffer, byNmse.NmseRatio, byNmse.Nmse, byNmse.Tolerance.Nmse);
            }
        }
    }

    private static string Markdown(ulong seed, CheckContext context, List<Row> rows, List<PropertyResult> failures)
    {
        var md = new StringBuilder();
        md.AppendLine($"# Conformance: {string.Join(", ", context.Subjects)}");
        md.AppendLine();
        md.AppendLine($"Against the F64 definition; seed {seed}. Element error/bound: the worst |a − b| / (e·(|b| + RMS(b)) + floor) over every element of every case (1 = at the bound); NMSE/bound: the worst Σ(a − b)²/Σb² over its bound (floor and allowed rounding included), with the NMSE itself.");
        md.AppendLine();
        md.AppendLine("| property | subject | cases | element error/bound | e | NMSE/bound | NMSE | NMSE bound | result |");
        md.AppendLine("|---|---|--:|--:|--:|--:|--:|--:|---|");
        foreach (var r in rows)
            md.AppendLine(r.ElementBuffer is null
                ? $"| {r.Property} | {r.Subject} | {r.Cases} | — | — | — | — | — | {r.Result} |"
                : $"| {r.Property} | {r.Subject} | {r.Cases} | {Row.Ratio(r.ElementRatio)} ({r.ElementBuffer}) | {r.ElementBound:0.#E+0} | {Row.Ratio(r.NmseRatio)} ({r.NmseBuffer}) | {r.Nmse:0.0E+0} | {r.NmseBound:0.#E+0} | {r.Result} |");
        foreach (var f in failures)
        {
            md.AppendLine();
            md.AppendLine($"## FAILED {f.Property.FullName}");
            md.AppendLine();
            md.AppendLine($"Case {f.CasesRun} failed; shrunk in {f.ShrinkSteps} steps to `{f.Shrunk}` (from `{f.Failed}`). Replay: `{f.Replay}`");
            md.AppendLine();
            md.AppendLine("```");
            md.AppendLine(f.Message);
            md.AppendLine("```");
        }
        return md.ToString();
    }

    private static string Json(ulong seed, CheckContext context, List<Row> rows, List<PropertyResult> failures) =>
        JsonSerializer.Serialize(new
        {
            subjects = context.Subjects.Select(s => s.Name),
            seed,
            rows = rows.Select(r => new
            {
                property = r.Property, subject = r.Subject, cases = r.Cases, result = r.Result,
                elementBuffer = r.ElementBuffer, elementRatio = r.ElementRatio, elementBound = r.ElementBound,
                nmseBuffer = r.NmseBuffer, nmseRatio = r.NmseRatio, nmse = r.Nmse, nmseBound = r.NmseBound,
            }),
            failures = failures.Select(f => new
            {
                property = f.Property.FullName, failedCase = f.CasesRun, shrunk = f.Shrunk?.ToString(), original = f.Failed?.ToString(),
                shrinkSteps = f.ShrinkSteps, message = f.Message, replay = f.Replay,
            }),
        }, new JsonSerializerOptions { WriteIndented = true });
}
