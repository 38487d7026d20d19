using System.Text.Json;
using Xunit;

namespace Llm.Conformance.Training;

/// <summary>`llm conformance`: the catalogue's checks from the command line, its table, its reports and its refusals.</summary>
public sealed class ConformanceCliTests
{
    [Fact]
    public void Prints_a_row_per_property_and_subject_and_writes_a_JSON_report()
    {
        string report = Path.Combine(Directory.CreateTempSubdirectory("llm-conf-").FullName, "r.json");
        var r = CliRun.Run("conformance", "--backend", "cpu", "--ops", "Gelu.Forward,Add*", "--cases", "3", "--seed", "17", "--report", report);
        Assert.True(r.Code == 0, r.Out + r.Err);
        var lines = CliRun.Lines(r.Out);
        Assert.Contains(lines, l => l.StartsWith("Gelu.Forward") && l.Contains("cpu-fast") && l.EndsWith("pass"));
        Assert.Contains(lines, l => l.StartsWith("Add.BackwardMatchesFiniteDifferences") && l.Contains("definition"));
        Assert.Contains("3 of 3 properties passed on cpu-fast", r.Out);
        Assert.Contains("seed 17", r.Out);
        using var json = JsonDocument.Parse(File.ReadAllText(report));
        var rows = json.RootElement.GetProperty("rows").EnumerateArray().ToList();
        var gelu = rows.Single(x => x.GetProperty("property").GetString() == "Gelu.Forward");
        Assert.Equal(3, gelu.GetProperty("cases").GetInt32());
        Assert.InRange(gelu.GetProperty("elementRatio").GetDouble(), 0, 1);
        Assert.Equal(5e-6, gelu.GetProperty("elementBound").GetDouble());
    }

    [Fact]
    public void The_same_seed_draws_the_same_cases()
    {
        var a = CliRun.Run("conformance", "--backend", "cpu", "--ops", "LayerNorm.Forward", "--cases", "2", "--seed", "5");
        var b = CliRun.Run("conformance", "--backend", "cpu", "--ops", "LayerNorm.Forward", "--cases", "2", "--seed", "5");
        Assert.Equal(0, a.Code);
        Assert.Equal(a.Out, b.Out);
    }

    [Fact]
    public void Refuses_an_unknown_property_and_a_report_of_another_kind()
    {
        CliRun.AssertOneLineError(CliRun.Run("conformance", "--backend", "cpu", "--ops", "Nonesuch*"), "--ops 'Nonesuch*' matches no property");
        CliRun.AssertOneLineError(CliRun.Run("conformance", "--backend", "cpu", "--report", "out.txt"), "--report out.txt");
        CliRun.AssertOneLineError(CliRun.Run("conformance", "--cases", "0"), "--cases");
    }
}
