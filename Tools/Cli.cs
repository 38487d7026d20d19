using System.CommandLine;
using System.Text.Json;
using Llm.Cpu;
using Llm.Tensors;

namespace Llm.Tools;

/// <summary>
/// The `llm` command line: train, sample, eval, bench. Every failure, a bad option included, ends as one line on
/// stderr ("error: ...") and a non-zero exit code, never a stack trace.
/// </summary>
public static class Cli
{
    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var root = new RootCommand("Define, train and check GPT-2 language models (Reference CPU backend).");
        root.Subcommands.Add(TrainCommand.Create(stdout));
        root.Subcommands.Add(SampleCommand.Create(stdout));
        root.Subcommands.Add(EvalCommand.Create(stdout));
        root.Subcommands.Add(BenchCommand.Create(stdout));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            stderr.WriteLine($"error: {parse.Errors[0].Message} (see --help)");
            return 2;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = stdout, Error = stderr });
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or UnauthorizedAccessException
                                       or FormatException or NotSupportedException or KeyNotFoundException or JsonException or InvalidOperationException)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"error: unexpected {e.GetType().Name}: {e.Message}");
            return 3;
        }
    }

    /// <summary>The backend the commands run on. Only the Reference CPU backend exists so far.</summary>
    internal static IBackend CreateBackend() => new CpuBackend();

    internal static Option<T> Opt<T>(string name, string description, T defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    internal static Option<T> Opt<T>(string name, string description) => new(name) { Description = description };
}
