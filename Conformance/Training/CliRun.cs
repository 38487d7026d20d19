using Llm.Tools;
using Xunit;

namespace Llm.Conformance.Training;

/// <summary>The CLI run in-process, as the CLI tests drive it, and the shape every failure must have.</summary>
public static class CliRun
{
    /// <summary>`llm args...` with its exit code and what it wrote to stdout and stderr.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    public static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>A non-zero exit and exactly one line on stderr, "error: ...", naming <paramref name="mention"/>, in the
    /// CLI's own words (no .NET parameter names, type names or stack frames). Returns that line.</summary>
    public static string AssertOneLineError((int Code, string Out, string Err) r, string mention)
    {
        Assert.True(r.Code != 0, $"exit code 0; stdout: {r.Out}");
        var lines = Lines(r.Err);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{r.Err}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(mention, lines[0]);
        foreach (string dotnet in new[] { "(Parameter", "Actual value was", "System.", "Int32", "UInt64", "Single", "Exception", " at Llm." })
            Assert.DoesNotContain(dotnet, lines[0]);
        return lines[0];
    }
}
