using System.Text;

namespace Llm.Vulkan;

/// <summary>What the backend found and chose at start: the device, its limits that the kernels size themselves by,
/// and which optional features are supported and enabled. <see cref="ToString"/> is what bench and --verbose print.</summary>
public sealed record DeviceInfo
{
    /// <summary>Index in enumeration order (what LLM_VULKAN_DEVICE and --device take).</summary>
    public required int Index { get; init; }
    public required string Name { get; init; }
    /// <summary>"discrete GPU", "integrated GPU", "virtual GPU", "CPU" or "other".</summary>
    public required string Type { get; init; }
    public required string DriverName { get; init; }
    /// <summary>VkPhysicalDeviceDriverProperties.driverID: what <see cref="DeviceQuirks"/> are keyed on.</summary>
    public required Silk.NET.Vulkan.DriverId DriverId { get; init; }
    public required string DriverInfo { get; init; }
    public required Version ApiVersion { get; init; }

    public required uint[] MaxComputeWorkGroupSize { get; init; }
    public required uint[] MaxComputeWorkGroupCount { get; init; }
    public required uint MaxComputeWorkGroupInvocations { get; init; }
    public required uint MaxComputeSharedMemorySize { get; init; }
    public required ulong MaxStorageBufferRange { get; init; }
    public required ulong MaxMemoryAllocationSize { get; init; }
    public required ulong MinStorageBufferOffsetAlignment { get; init; }
    public required uint MaxPushConstantsSize { get; init; }
    /// <summary>Device UUID as 32 hex digits: names the pipeline cache file.</summary>
    public required string DeviceUuid { get; init; }

    public required uint SubgroupSize { get; init; }
    /// <summary>subgroupSupportedOperations, e.g. "Basic, Vote, Arithmetic, ...".</summary>
    public required string SubgroupOperations { get; init; }
    /// <summary>Subgroup arithmetic (subgroupAdd, ...) is supported in compute shaders.</summary>
    public required bool SubgroupArithmeticSupported { get; init; }
    /// <summary>Supported and not switched off (LLM_VULKAN_NO_SUBGROUPS): reductions use the SUBGROUPS variants.</summary>
    public required bool SubgroupsEnabled { get; init; }
    /// <summary>storageBuffer16BitAccess and shaderFloat16 are both supported.</summary>
    public required bool Fp16Supported { get; init; }
    /// <summary>Supported and not switched off (LLM_VULKAN_NO_FP16): chained into device creation.</summary>
    public required bool Fp16Enabled { get; init; }
    public required bool ValidationEnabled { get; init; }

    public override string ToString()
    {
        var s = new StringBuilder();
        s.AppendLine($"Vulkan device {Index}: {Name} ({Type}), driver {DriverName} {DriverInfo} ({DriverId}), API {ApiVersion}");
        s.AppendLine($"  workgroup size ≤ [{string.Join(", ", MaxComputeWorkGroupSize)}], invocations ≤ {MaxComputeWorkGroupInvocations}, " +
                     $"groups ≤ [{string.Join(", ", MaxComputeWorkGroupCount)}], shared memory {MaxComputeSharedMemorySize / 1024} KiB");
        s.AppendLine($"  storage buffer range ≤ {Mib(MaxStorageBufferRange)}, allocation ≤ {Mib(MaxMemoryAllocationSize)}, " +
                     $"offset alignment {MinStorageBufferOffsetAlignment} B, push constants {MaxPushConstantsSize} B");
        s.AppendLine($"  subgroup size {SubgroupSize} ({SubgroupOperations}); subgroup arithmetic {OnOff(SubgroupArithmeticSupported, SubgroupsEnabled)}");
        s.Append($"  fp16 storage+arithmetic {OnOff(Fp16Supported, Fp16Enabled)}; validation {(ValidationEnabled ? "on" : "off")}");
        return s.ToString();
    }

    private static string Mib(ulong bytes) => $"{bytes / (1024.0 * 1024):0.#} MiB";
    private static string OnOff(bool supported, bool enabled) =>
        !supported ? "unsupported" : enabled ? "enabled" : "supported, disabled";
}
