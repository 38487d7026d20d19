namespace Llm.Vulkan;

/// <summary>
/// How to open the Vulkan backend. Every field has an environment variable that is read by
/// <see cref="FromEnvironment"/>; a constructor argument (e.g. the CLI's --device) overrides it.
/// </summary>
public sealed record VulkanOptions
{
    /// <summary>Index of the physical device in enumeration order (LLM_VULKAN_DEVICE); null picks the best one:
    /// discrete GPU, then integrated, then virtual, then CPU (lavapipe).</summary>
    public int? DeviceIndex { get; init; }

    /// <summary>Enable VK_LAYER_KHRONOS_validation and collect its messages (LLM_VULKAN_VALIDATION=1).</summary>
    public bool Validation { get; init; }

    /// <summary>Do not enable fp16 storage and arithmetic even if supported (LLM_VULKAN_NO_FP16=1).</summary>
    public bool DisableFp16 { get; init; }

    /// <summary>Use the shared-memory variants instead of subgroup arithmetic (LLM_VULKAN_NO_SUBGROUPS=1).</summary>
    public bool DisableSubgroups { get; init; }

    /// <summary>Bind at most this many bytes of a tensor per descriptor (which may start up to the offset alignment
    /// below it) even where maxStorageBufferRange allows more: tests set a few KiB so that the chunked paths of every op
    /// run on every device (no environment variable).</summary>
    public ulong? MaxBindingBytes { get; init; }

    /// <summary>Run at most this many loop iterations per shader invocation even where the driver has no cap: tests set
    /// a small budget so that the split dispatches run on every device (no environment variable).</summary>
    public long? LoopIterationBudget { get; init; }

    /// <summary>Folder of the on-disk pipeline cache (LLM_VULKAN_CACHE_DIR); default ~/.cache/llm.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>Options from the LLM_VULKAN_* environment variables.</summary>
    public static VulkanOptions FromEnvironment()
    {
        string? device = Environment.GetEnvironmentVariable("LLM_VULKAN_DEVICE");
        int? index = null;
        if (!string.IsNullOrWhiteSpace(device))
        {
            if (!int.TryParse(device, out int parsed) || parsed < 0)
                throw new ArgumentException($"LLM_VULKAN_DEVICE='{device}' is not a device index (0, 1, ...)");
            index = parsed;
        }
        return new VulkanOptions
        {
            DeviceIndex = index,
            Validation = Flag("LLM_VULKAN_VALIDATION"),
            DisableFp16 = Flag("LLM_VULKAN_NO_FP16"),
            DisableSubgroups = Flag("LLM_VULKAN_NO_SUBGROUPS"),
            CacheDirectory = NullIfEmpty(Environment.GetEnvironmentVariable("LLM_VULKAN_CACHE_DIR")),
        };
    }

    /// <summary>True for "1", "true", "yes", "on" (any case).</summary>
    public static bool Flag(string variable) =>
        Environment.GetEnvironmentVariable(variable)?.Trim().ToLowerInvariant() is "1" or "true" or "yes" or "on";

    private static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;

    /// <summary>The pipeline cache folder: <see cref="CacheDirectory"/> or ~/.cache/llm (XDG_CACHE_HOME honoured).</summary>
    public string ResolveCacheDirectory()
    {
        if (CacheDirectory is not null) return CacheDirectory;
        string? xdg = NullIfEmpty(Environment.GetEnvironmentVariable("XDG_CACHE_HOME"));
        string root = xdg ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "llm");
    }
}
