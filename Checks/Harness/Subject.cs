using Llm.Tensors;
using Llm.Vulkan;

namespace Llm.Checks;

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
    public bool Created => _instance.IsValueCreated;
    public override string ToString() => Name;

    /// <summary>The subjects of one backend: the CPU fast paths, or a Vulkan device three times, once with every
    /// feature it has and once with each optional feature switched off (the fallback shader variants must agree too).
    /// <paramref name="openVulkan"/> opens a device with the given options (the tests add skipping).</summary>
    public static IReadOnlyList<Subject> Of(string backend, VulkanOptions? vulkan = null, Func<VulkanOptions, IBackend>? openVulkan = null)
    {
        vulkan ??= VulkanOptions.FromEnvironment();
        openVulkan ??= o => new VulkanBackend(o);
        return Variants(backend, vulkan, openVulkan);
    }

    private static IReadOnlyList<Subject> Variants(string backend, VulkanOptions vulkan, Func<VulkanOptions, IBackend> openVulkan) => backend switch
    {
        "cpu" => [new("cpu-fast", () => new Cpu.CpuBackend(fastPaths: true))],
        "vulkan" =>
        [
            new("vulkan", () => openVulkan(vulkan)),
            new("vulkan-no-subgroups", () => openVulkan(vulkan with { DisableSubgroups = true })),
            new("vulkan-no-fp16", () => openVulkan(vulkan with { DisableFp16 = true })),
        ],
        _ => throw new ArgumentException($"unknown backend '{backend}': cpu or vulkan"),
    };
}
