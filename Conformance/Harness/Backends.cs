using Llm.Cpu;
using Llm.Tensors;

namespace Llm.Conformance.Harness;

/// <summary>A backend under test: a name for messages and a lazily created, shared instance.</summary>
/// <param name="available">false where the backend cannot run (no GPU, no driver): it is then left out, not failed.</param>
public sealed class Subject(string name, Func<IBackend> create, Func<bool>? available = null)
{
    public bool Available => available?.Invoke() ?? true;
    private readonly Lazy<IBackend> _instance = new(create, LazyThreadSafetyMode.ExecutionAndPublication);
    public string Name { get; } = name;
    /// <summary>Subjects compute in F32, the training type.</summary>
    public DType DType => DType.F32;
    public IBackend Backend => _instance.Value;
    public override string ToString() => Name;
}

/// <summary>
/// Who is tested against whom. Every property runs each op on every <see cref="Subjects"/> backend in F32 and on
/// the <see cref="Oracle"/>, the scalar definitions in F64, with identical inputs, and compares the results.
/// A new backend joins the whole suite with one line in <see cref="Subjects"/>.
/// </summary>
public static class Backends
{
    public static IReadOnlyList<Subject> All { get; } =
    [
        new("cpu-fast", () => new CpuBackend(fastPaths: true)),
        new("vulkan", () => Vulkan.VulkanTestDevice.Open(), available: () => !Vulkan.VulkanTestDevice.Skipped),
        // the whole suite again with each device feature switched off: the fallback shader variants must agree too
        new("vulkan-no-subgroups", () => Vulkan.VulkanTestDevice.Open(WithValidation() with { DisableSubgroups = true }), available: () => !Vulkan.VulkanTestDevice.Skipped),
        new("vulkan-no-fp16", () => Vulkan.VulkanTestDevice.Open(WithValidation() with { DisableFp16 = true }), available: () => !Vulkan.VulkanTestDevice.Skipped),
    ];

    private static Llm.Vulkan.VulkanOptions WithValidation() => Llm.Vulkan.VulkanOptions.FromEnvironment() with { Validation = true };

    /// <summary>The available backends of <see cref="All"/>; CONFORMANCE_SUBJECTS=name,name narrows them.</summary>
    public static IReadOnlyList<Subject> Subjects { get; } = Select();

    private static List<Subject> Select()
    {
        var only = Environment.GetEnvironmentVariable("CONFORMANCE_SUBJECTS")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var chosen = All.Where(s => (only is null || only.Contains(s.Name)) && s.Available).ToList();
        if (chosen.Count == 0)
            throw new InvalidOperationException($"no conformance subject selected: CONFORMANCE_SUBJECTS='{string.Join(",", only ?? [])}', known: {string.Join(", ", All)}");
        return chosen;
    }

    private static readonly Lazy<CpuBackend> _oracle = new(() => new CpuBackend(fastPaths: false));

    /// <summary>The definition: CpuBackend's scalar kernels, always run in F64 here.</summary>
    public static IBackend Oracle => _oracle.Value;
}
