using System.CommandLine;
using System.Text.Json;
using Llm.Cpu;
using Llm.Tensors;
using Llm.Vulkan;

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
        var root = new RootCommand("Define, train and check GPT-2 language models on the CPU Reference or a Vulkan GPU.");
        root.Options.Add(BackendOption);
        root.Options.Add(DeviceOption);
        root.Options.Add(VerboseOption);
        root.Subcommands.Add(TrainCommand.Create(stdout));
        root.Subcommands.Add(SampleCommand.Create(stdout));
        root.Subcommands.Add(EvalCommand.Create(stdout));
        root.Subcommands.Add(BenchCommand.Create(stdout));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            stderr.WriteLine($"error: {OneLine(parse.Errors[0].Message)} (see --help)");
            return 2;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = stdout, Error = stderr });
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or UnauthorizedAccessException
                                       or FormatException or NotSupportedException or KeyNotFoundException or JsonException or InvalidOperationException)
        {
            stderr.WriteLine($"error: {OneLine(e.Message)}");
            return 1;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"error: unexpected {e.GetType().Name}: {OneLine(e.Message)}");
            return 3;
        }
    }

    /// <summary>Folds a multi-line message (System.CommandLine lists choices on lines of their own) into one line.</summary>
    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    internal static readonly Option<string> BackendOption = new("--backend")
    {
        Description = "cpu, vulkan, or auto: Vulkan when a GPU is present, else the CPU Reference",
        DefaultValueFactory = _ => "auto",
        Recursive = true,
    };
    internal static readonly Option<int?> DeviceOption = new("--device")
    {
        Description = "Vulkan device index (listed by --verbose; also LLM_VULKAN_DEVICE)",
        Recursive = true,
    };
    internal static readonly Option<bool> VerboseOption = new("--verbose")
    {
        Description = "print the chosen device's name, driver and limits",
        Recursive = true,
    };

    static Cli() => BackendOption.AcceptOnlyFromAmong("auto", "cpu", "vulkan");

    /// <summary>The backend a command runs on, per --backend/--device; the choice is printed to <paramref name="log"/>.</summary>
    internal static IBackend CreateBackend(ParseResult p, TextWriter log)
    {
        string choice = p.GetValue(BackendOption) ?? "auto";
        int? device = p.GetValue(DeviceOption);
        bool verbose = p.GetValue(VerboseOption);
        string reason = "";
        if (choice == "auto")
        {
            (choice, reason) = device is not null ? ("vulkan", "--device given") : FindGpu();
        }
        if (verbose && choice == "vulkan" || verbose && reason.Length > 0)
            foreach (var d in SafeListDevices()) log.WriteLine($"vulkan device {d}");
        if (choice == "cpu")
        {
            var cpu = new CpuBackend();
            log.WriteLine($"backend: cpu ({Environment.ProcessorCount} cores{(reason.Length > 0 ? "; " + reason : "")})");
            if (verbose)
                log.WriteLine($"cpu: Vector512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}, Vector256 {System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated}, FMA {System.Runtime.Intrinsics.X86.Fma.IsSupported}");
            return cpu;
        }
        var vulkan = new VulkanBackend(device);
        log.WriteLine($"backend: vulkan on {vulkan.Info.Name} ({vulkan.Info.Type}){(reason.Length > 0 ? "; " + reason : "")}");
        if (verbose) log.WriteLine(vulkan.Info.ToString());
        return vulkan;
    }

    /// <summary>auto: the first GPU among the Vulkan devices, else the CPU Reference (lavapipe is a CPU device: slower
    /// than the Reference itself, so auto never picks it).</summary>
    private static (string Choice, string Reason) FindGpu()
    {
        var devices = SafeListDevices();
        var gpu = devices.FirstOrDefault(d => d.IsGpu);
        return gpu is null ? ("cpu", "no Vulkan GPU found") : ("vulkan", $"auto-selected GPU {gpu.Index}");
    }

    private static IReadOnlyList<DeviceSummary> SafeListDevices()
    {
        try { return VulkanBackend.ListDevices(); }
        catch (Exception e) when (e is VulkanException or DllNotFoundException or EntryPointNotFoundException) { return []; }
    }

    internal static Option<T> Opt<T>(string name, string description, T defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    internal static Option<T> Opt<T>(string name, string description) => new(name) { Description = description };
}
