using System.CommandLine;
using System.Text.Json;
using Llm.Cpu;
using Llm.Tensors;
using Llm.Vulkan;

namespace Llm.Tools;

/// <summary>
/// The `llm` command line: train, sample, eval, bench, conformance. Every failure, a bad option included, ends as one line on
/// stderr ("error: ...") and a non-zero exit code, never a stack trace.
/// </summary>
public static class Cli
{
    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var root = new RootCommand("Define, train and check language models on the CPU Reference or a Vulkan GPU.");
        root.Options.Add(BackendOption);
        root.Options.Add(DeviceOption);
        root.Options.Add(VerboseOption);
        root.Subcommands.Add(TrainCommand.Create(stdout, stderr));
        root.Subcommands.Add(SampleCommand.Create(stdout, stderr));
        root.Subcommands.Add(EvalCommand.Create(stdout, stderr));
        root.Subcommands.Add(BenchCommand.Create(stdout));
        root.Subcommands.Add(ConformanceCommand.Create(stdout));

        // LLM_TRACE_IO=1: each durable step of a checkpoint write ("fsync file P", "rename A -> B", ...) as a line "io: ..."
        // on stderr, flushed; LLM_TRACE_IO=step also waits for a line on stdin after each, so that a crash test can kill
        // the process exactly between two chosen steps
        string? trace = Environment.GetEnvironmentVariable("LLM_TRACE_IO");
        bool traceIo = trace is "1" or "step";
        if (traceIo)
            IO.FileSync.TraceTo(step =>
            {
                stderr.WriteLine($"io: {step}");
                stderr.Flush();
                if (trace == "step") Console.In.ReadLine();
            });
        try
        {
            // inside the try: the parser runs option rules, and a rule that throws must still end as one line
            var parse = root.Parse(args);
            if (ParseErrors.Explain(parse) is { } problem)
            {
                stderr.WriteLine($"error: {problem}");
                return 2;
            }
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = stdout, Error = stderr });
        }
        // the last line of defence: these carry messages written in this project, naming the file or option at fault
        catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or UnauthorizedAccessException
                                       or FormatException or NotSupportedException or KeyNotFoundException or JsonException
                                       or InvalidOperationException or VulkanException or Training.TrainingDivergedException)
        {
            stderr.WriteLine($"error: {ParseErrors.OneLine(e.Message)}");
            return 1;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"error: internal error, please report it: {ParseErrors.OneLine(e.Message)} ({e.GetType().Name})");
            return 3;
        }
        finally
        {
            if (traceIo) IO.FileSync.TraceTo(null);
        }
    }

    internal static readonly Option<string> BackendOption = new("--backend")
    {
        Description = "cpu, vulkan, or auto: Vulkan when a GPU is present, else the CPU Reference",
        DefaultValueFactory = _ => "auto",
        Recursive = true,
    };
    internal static readonly Option<int?> DeviceOption = new Option<int?>("--device")
    {
        Description = "Vulkan device index (listed by --verbose; also LLM_VULKAN_DEVICE)",
        Recursive = true,
    }.AtLeast(0);
    internal static readonly Option<bool> VerboseOption = new("--verbose")
    {
        Description = "print the chosen device's name, driver and limits",
        Recursive = true,
    };

    private static readonly string[] Backends = ["auto", "cpu", "vulkan"];

    static Cli() => BackendOption.Must(b => Backends.Contains(b), string.Join(", ", Backends[..^1]) + " or " + Backends[^1]);

    /// <summary>The backend a command runs on, per --backend/--device; the choice is printed to <paramref name="log"/>.</summary>
    internal static IBackend CreateBackend(ParseResult p, TextWriter log)
    {
        var (choice, reason) = ResolveBackend(p);
        int? device = p.GetValue(DeviceOption);
        bool verbose = p.GetValue(VerboseOption);
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
        CheckDeviceIndex(device);
        VulkanBackend vulkan;
        try { vulkan = new VulkanBackend(device); }
        catch (DllNotFoundException)
        {
            throw new NotSupportedException("--backend vulkan: the Vulkan loader (libvulkan.so.1) is not installed; install libvulkan1 and a driver, or use --backend cpu");
        }
        log.WriteLine($"backend: vulkan on {vulkan.Info.Name} ({vulkan.Info.Type}){(reason.Length > 0 ? "; " + reason : "")}");
        if (verbose) log.WriteLine(vulkan.Info.ToString());
        return vulkan;
    }

    /// <summary>cpu or vulkan, per --backend (auto: Vulkan when --device is given or a GPU is present), and why.</summary>
    internal static (string Choice, string Reason) ResolveBackend(ParseResult p)
    {
        string choice = p.GetValue(BackendOption) ?? "auto";
        if (choice != "auto") return (choice, "");
        return p.GetValue(DeviceOption) is not null ? ("vulkan", "--device given") : FindGpu();
    }

    /// <summary>Refuses a device index (--device, else LLM_VULKAN_DEVICE) beyond the devices present, saying how many
    /// there are, before the backend is opened.</summary>
    internal static void CheckDeviceIndex(int? device)
    {
        string source = device is null ? "LLM_VULKAN_DEVICE=" : "--device ";
        device ??= Vulkan.VulkanOptions.FromEnvironment().DeviceIndex;
        if (device is not int index) return;
        var devices = SafeListDevices();
        if (index < devices.Count) return;
        throw new ArgumentException(devices.Count switch
        {
            0 => $"{source}{index}: no Vulkan device is present",
            1 => $"{source}{index}: there is only 1 Vulkan device, {devices[0]}",
            _ => $"{source}{index}: there are {devices.Count} Vulkan devices, {string.Join("; ", devices)}",
        });
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
