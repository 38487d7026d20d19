using System.Runtime.InteropServices;
using Silk.NET.Core;
using Silk.NET.Core.Native;
using Silk.NET.Vulkan;

namespace Llm.Vulkan;

/// <summary>
/// Instance, physical device choice, feature detection and the logical device with one compute queue.
/// Everything else (memory, pipelines, command recording) is built on the handles kept here.
/// </summary>
internal sealed unsafe class VulkanContext : IDisposable
{
    public Vk Vk { get; }
    public Instance Instance { get; }
    public PhysicalDevice PhysicalDevice { get; }
    public Device Device { get; }
    public Queue Queue { get; }
    public uint QueueFamily { get; }
    public DeviceInfo Info { get; }
    public PhysicalDeviceMemoryProperties MemoryProperties { get; }
    public ValidationMessenger? Validation { get; }

    public VulkanContext(VulkanOptions options)
    {
        Vk = Vk.GetApi();
        if (options.Validation)
        {
            ValidationMessenger.RequireLayer(Vk);
            Validation = new ValidationMessenger(Vk);
        }
        Instance = CreateInstance();
        try
        {
            Validation?.Attach(Instance);
            var candidates = EnumerateDevices();
            int chosen = Choose(candidates, options.DeviceIndex);
            PhysicalDevice = candidates[chosen].Device;
            Info = Probe(PhysicalDevice, chosen, options);
            MemoryProperties = Vk.GetPhysicalDeviceMemoryProperties(PhysicalDevice);
            QueueFamily = FindComputeQueueFamily(PhysicalDevice);
            Device = CreateDevice(Info.Fp16Enabled);
            Queue = Vk.GetDeviceQueue(Device, QueueFamily, 0);
        }
        catch
        {
            Validation?.Dispose();
            Vk.DestroyInstance(Instance, null);
            throw;
        }
    }

    private Instance CreateInstance()
    {
        nint appName = SilkMarshal.StringToPtr("llm");
        var app = new ApplicationInfo
        {
            SType = StructureType.ApplicationInfo,
            PApplicationName = (byte*)appName,
            PEngineName = (byte*)appName,
            ApiVersion = Vk.Version12,
        };
        string[] layers = Validation is null ? [] : [ValidationMessenger.LayerName];
        string[] extensions = Validation is null ? [] : [ValidationMessenger.ExtensionName, ValidationMessenger.FeaturesExtensionName];
        var layerNames = (byte**)SilkMarshal.StringArrayToPtr(layers);
        var extensionNames = (byte**)SilkMarshal.StringArrayToPtr(extensions);
        try
        {
            // Synchronization validation: hazards between commands (a read after an unbarriered write, ...) are reported
            // too, so a missing barrier of the hazard tracking fails the tests instead of racing on a real GPU.
            var syncValidation = ValidationFeatureEnableEXT.SynchronizationValidationExt;
            var features = new ValidationFeaturesEXT
            {
                SType = StructureType.ValidationFeaturesExt, EnabledValidationFeatureCount = 1, PEnabledValidationFeatures = &syncValidation,
            };
            var debugInfo = Validation?.CreateInfo() ?? default;
            debugInfo.PNext = &features;
            var info = new InstanceCreateInfo
            {
                SType = StructureType.InstanceCreateInfo,
                PNext = Validation is null ? null : &debugInfo,
                PApplicationInfo = &app,
                EnabledLayerCount = (uint)layers.Length,
                PpEnabledLayerNames = layerNames,
                EnabledExtensionCount = (uint)extensions.Length,
                PpEnabledExtensionNames = extensionNames,
            };
            Instance instance;
            VulkanException.Check(Vk.CreateInstance(&info, null, &instance), "vkCreateInstance");
            return instance;
        }
        finally
        {
            SilkMarshal.Free((nint)layerNames);
            SilkMarshal.Free((nint)extensionNames);
            SilkMarshal.Free(appName);
        }
    }

    private (PhysicalDevice Device, PhysicalDeviceProperties Properties)[] EnumerateDevices()
    {
        uint count = 0;
        VulkanException.Check(Vk.EnumeratePhysicalDevices(Instance, &count, null), "vkEnumeratePhysicalDevices");
        if (count == 0)
            throw new VulkanException("no Vulkan device found (install mesa-vulkan-drivers for lavapipe, or a GPU driver; set LLM_SKIP_VULKAN=1 to skip the Vulkan tests)");
        var devices = new PhysicalDevice[count];
        fixed (PhysicalDevice* p = devices)
            VulkanException.Check(Vk.EnumeratePhysicalDevices(Instance, &count, p), "vkEnumeratePhysicalDevices");
        return devices.Select(d => (d, Vk.GetPhysicalDeviceProperties(d))).ToArray();
    }

    /// <summary>The requested index, else the best type (discrete, integrated, virtual, CPU) among Vulkan ≥ 1.2
    /// devices, the first in enumeration order on ties.</summary>
    private static int Choose((PhysicalDevice Device, PhysicalDeviceProperties Properties)[] devices, int? requested)
    {
        string List() => string.Join("; ", devices.Select((d, i) => $"{i}: {NameOf(d.Properties)} ({d.Properties.DeviceType})"));
        if (requested is int index)
        {
            if (index >= devices.Length)
                throw new ArgumentOutOfRangeException(nameof(requested), $"Vulkan device {index} does not exist; devices: {List()}");
            if (devices[index].Properties.ApiVersion < Vk.Version12)
                throw new VulkanException($"Vulkan device {index} supports only API {VersionOf(devices[index].Properties.ApiVersion)}; 1.2 is needed");
            return index;
        }
        int best = -1;
        for (int i = 0; i < devices.Length; i++)
        {
            if (devices[i].Properties.ApiVersion < Vk.Version12) continue;
            if (best < 0 || Rank(devices[i].Properties.DeviceType) < Rank(devices[best].Properties.DeviceType)) best = i;
        }
        if (best < 0) throw new VulkanException($"no Vulkan 1.2 device; devices: {List()}");
        return best;
    }

    /// <summary>Every physical device, without creating a logical one: what `--device N` can choose from.
    /// Throws VulkanException (or DllNotFoundException without libvulkan) when Vulkan cannot start at all.</summary>
    public static IReadOnlyList<DeviceSummary> ListDevices()
    {
        var vk = Vk.GetApi();
        var app = new ApplicationInfo { SType = StructureType.ApplicationInfo, ApiVersion = Vk.Version12 };
        var info = new InstanceCreateInfo { SType = StructureType.InstanceCreateInfo, PApplicationInfo = &app };
        Instance instance;
        VulkanException.Check(vk.CreateInstance(&info, null, &instance), "vkCreateInstance");
        try
        {
            uint count = 0;
            VulkanException.Check(vk.EnumeratePhysicalDevices(instance, &count, null), "vkEnumeratePhysicalDevices");
            var devices = new PhysicalDevice[count];
            fixed (PhysicalDevice* p = devices)
                if (count > 0) VulkanException.Check(vk.EnumeratePhysicalDevices(instance, &count, p), "vkEnumeratePhysicalDevices");
            return devices.Select((d, i) =>
            {
                var props = vk.GetPhysicalDeviceProperties(d);
                return new DeviceSummary(i, NameOf(props), props.DeviceType.ToString(), VersionOf(props.ApiVersion),
                    IsGpu: props.DeviceType is PhysicalDeviceType.DiscreteGpu or PhysicalDeviceType.IntegratedGpu or PhysicalDeviceType.VirtualGpu);
            }).ToList();
        }
        finally
        {
            vk.DestroyInstance(instance, null);
        }
    }

    private static int Rank(PhysicalDeviceType type) => type switch
    {
        PhysicalDeviceType.DiscreteGpu => 0,
        PhysicalDeviceType.IntegratedGpu => 1,
        PhysicalDeviceType.VirtualGpu => 2,
        PhysicalDeviceType.Cpu => 3,
        _ => 4,
    };

    private static string NameOf(PhysicalDeviceProperties p) => SilkMarshal.PtrToString((nint)p.DeviceName) ?? "?";
    private static Version VersionOf(uint v) => new((int)(v >> 22), (int)((v >> 12) & 0x3FF), (int)(v & 0xFFF));

    /// <summary>Reads properties, limits and features of the chosen device and decides what to enable.</summary>
    private DeviceInfo Probe(PhysicalDevice device, int index, VulkanOptions options)
    {
        var v12 = new PhysicalDeviceVulkan12Properties { SType = StructureType.PhysicalDeviceVulkan12Properties };
        var v11 = new PhysicalDeviceVulkan11Properties { SType = StructureType.PhysicalDeviceVulkan11Properties, PNext = &v12 };
        var props = new PhysicalDeviceProperties2 { SType = StructureType.PhysicalDeviceProperties2, PNext = &v11 };
        Vk.GetPhysicalDeviceProperties2(device, &props);

        var f12 = new PhysicalDeviceVulkan12Features { SType = StructureType.PhysicalDeviceVulkan12Features };
        var f11 = new PhysicalDeviceVulkan11Features { SType = StructureType.PhysicalDeviceVulkan11Features, PNext = &f12 };
        var features = new PhysicalDeviceFeatures2 { SType = StructureType.PhysicalDeviceFeatures2, PNext = &f11 };
        Vk.GetPhysicalDeviceFeatures2(device, &features);

        var limits = props.Properties.Limits;
        var ops = v11.SubgroupSupportedOperations;
        bool subgroups = v11.SubgroupSupportedStages.HasFlag(ShaderStageFlags.ComputeBit) &&
                         ops.HasFlag(SubgroupFeatureFlags.BasicBit) && ops.HasFlag(SubgroupFeatureFlags.ArithmeticBit);
        bool fp16 = f11.StorageBuffer16BitAccess && f12.ShaderFloat16;
        var info = new DeviceInfo
        {
            Index = index,
            Name = NameOf(props.Properties),
            Type = props.Properties.DeviceType switch
            {
                PhysicalDeviceType.DiscreteGpu => "discrete GPU",
                PhysicalDeviceType.IntegratedGpu => "integrated GPU",
                PhysicalDeviceType.VirtualGpu => "virtual GPU",
                PhysicalDeviceType.Cpu => "CPU",
                _ => "other",
            },
            DriverId = v12.DriverID,
            DriverName = SilkMarshal.PtrToString((nint)v12.DriverName) ?? "",
            DriverInfo = SilkMarshal.PtrToString((nint)v12.DriverInfo) ?? "",
            ApiVersion = VersionOf(props.Properties.ApiVersion),
            MaxComputeWorkGroupSize = [limits.MaxComputeWorkGroupSize[0], limits.MaxComputeWorkGroupSize[1], limits.MaxComputeWorkGroupSize[2]],
            MaxComputeWorkGroupCount = [limits.MaxComputeWorkGroupCount[0], limits.MaxComputeWorkGroupCount[1], limits.MaxComputeWorkGroupCount[2]],
            MaxComputeWorkGroupInvocations = limits.MaxComputeWorkGroupInvocations,
            MaxComputeSharedMemorySize = limits.MaxComputeSharedMemorySize,
            MaxStorageBufferRange = limits.MaxStorageBufferRange,
            MaxMemoryAllocationSize = v11.MaxMemoryAllocationSize,
            MinStorageBufferOffsetAlignment = limits.MinStorageBufferOffsetAlignment,
            MaxPushConstantsSize = limits.MaxPushConstantsSize,
            DeviceUuid = Convert.ToHexString(new ReadOnlySpan<byte>(v11.DeviceUuid, 16)).ToLowerInvariant(),
            SubgroupSize = v11.SubgroupSize,
            SubgroupOperations = ops.ToString().Replace("SubgroupFeature", "").Replace("Bit", ""),
            SubgroupArithmeticSupported = subgroups,
            SubgroupsEnabled = subgroups && !options.DisableSubgroups,
            Fp16Supported = fp16,
            Fp16Enabled = fp16 && !options.DisableFp16,
            ValidationEnabled = options.Validation,
        };
        return info;
    }

    private uint FindComputeQueueFamily(PhysicalDevice device)
    {
        uint count = 0;
        Vk.GetPhysicalDeviceQueueFamilyProperties(device, &count, null);
        var families = new QueueFamilyProperties[count];
        fixed (QueueFamilyProperties* p = families) Vk.GetPhysicalDeviceQueueFamilyProperties(device, &count, p);
        for (uint i = 0; i < count; i++)
            if (families[i].QueueFlags.HasFlag(QueueFlags.ComputeBit)) return i;
        throw new VulkanException($"Vulkan device '{Info.Name}' has no compute queue");
    }

    /// <summary>The logical device, with fp16 storage + arithmetic chained in when enabled. Subgroup operations need
    /// no feature bit: they are core properties in Vulkan 1.1.</summary>
    private Device CreateDevice(bool fp16)
    {
        float priority = 1f;
        var queueInfo = new DeviceQueueCreateInfo
        {
            SType = StructureType.DeviceQueueCreateInfo,
            QueueFamilyIndex = QueueFamily,
            QueueCount = 1,
            PQueuePriorities = &priority,
        };
        var f12 = new PhysicalDeviceVulkan12Features { SType = StructureType.PhysicalDeviceVulkan12Features, ShaderFloat16 = fp16 };
        var f11 = new PhysicalDeviceVulkan11Features
        {
            SType = StructureType.PhysicalDeviceVulkan11Features, PNext = &f12, StorageBuffer16BitAccess = fp16,
        };
        var features = new PhysicalDeviceFeatures2 { SType = StructureType.PhysicalDeviceFeatures2, PNext = &f11 };
        var info = new DeviceCreateInfo
        {
            SType = StructureType.DeviceCreateInfo,
            PNext = &features,
            QueueCreateInfoCount = 1,
            PQueueCreateInfos = &queueInfo,
        };
        Device device;
        VulkanException.Check(Vk.CreateDevice(PhysicalDevice, &info, null, &device), "vkCreateDevice");
        return device;
    }

    /// <summary>A memory type index with all of <paramref name="required"/> (and <paramref name="preferred"/> if any has them).</summary>
    public uint FindMemoryType(uint typeBits, MemoryPropertyFlags required, MemoryPropertyFlags preferred)
    {
        var memory = MemoryProperties;
        int fallback = -1;
        for (int i = 0; i < memory.MemoryTypeCount; i++)
        {
            if ((typeBits & (1u << i)) == 0) continue;
            var flags = memory.MemoryTypes[i].PropertyFlags;
            if ((flags & required) != required) continue;
            if ((flags & preferred) == preferred) return (uint)i;
            if (fallback < 0) fallback = i;
        }
        if (fallback < 0) throw new VulkanException($"no Vulkan memory type with {required} on '{Info.Name}'");
        return (uint)fallback;
    }

    public void Dispose()
    {
        Vk.DeviceWaitIdle(Device);
        Vk.DestroyDevice(Device, null);
        Validation?.Dispose();
        Vk.DestroyInstance(Instance, null);
        Vk.Dispose();
    }
}

/// <summary>One physical device as enumerated: index for --device, name, type, API version, and whether it is a GPU.</summary>
public sealed record DeviceSummary(int Index, string Name, string Type, Version ApiVersion, bool IsGpu)
{
    public override string ToString() => $"{Index}: {Name} ({Type}, Vulkan {ApiVersion})";
}
