using System.Reflection;
using Silk.NET.Vulkan;

namespace Llm.Vulkan;

/// <summary>
/// Compute pipelines, created lazily per (shader, variant, specialization constants) from the SPIR-V embedded at build
/// time (resource "Llm.Vulkan.Shaders.&lt;shader&gt;[.&lt;VARIANT&gt;].spv"), through a VkPipelineCache kept on disk.
/// Every pipeline has one descriptor set of N storage buffers (bindings 0..N-1) and a 128-byte push-constant range.
/// </summary>
internal sealed unsafe class Pipelines : IDisposable
{
    /// <summary>The push-constant range of every layout: the minimum every device supports.</summary>
    public const uint PushConstantBytes = 128;
    private const string ResourcePrefix = "Llm.Vulkan.Shaders.";

    public readonly record struct Entry(Pipeline Pipeline, PipelineLayout Layout, DescriptorSetLayout SetLayout, int Bindings);

    private readonly VulkanContext context;
    private readonly string cachePath;
    private readonly PipelineCache cache;
    private readonly Dictionary<int, (DescriptorSetLayout Set, PipelineLayout Layout)> layouts = [];
    private readonly Dictionary<string, ShaderModule> modules = [];
    private readonly Dictionary<string, Entry> pipelines = [];

    public Pipelines(VulkanContext context, string cacheDirectory)
    {
        this.context = context;
        cachePath = Path.Combine(cacheDirectory, $"vulkan-pipelines-{context.Info.DeviceUuid}.bin");
        byte[] initial = [];
        try { if (File.Exists(cachePath)) initial = File.ReadAllBytes(cachePath); }
        catch (IOException) { }            // an unreadable cache is only slower
        catch (UnauthorizedAccessException) { }
        fixed (byte* data = initial)
        {
            // The driver checks the header (vendor, device, cache UUID) and starts empty when it does not match.
            var info = new PipelineCacheCreateInfo
            {
                SType = StructureType.PipelineCacheCreateInfo, InitialDataSize = (nuint)initial.Length, PInitialData = data,
            };
            PipelineCache handle;
            VulkanException.Check(context.Vk.CreatePipelineCache(context.Device, &info, null, &handle), "vkCreatePipelineCache");
            cache = handle;
        }
    }

    public int Count => pipelines.Count;

    /// <summary>"main", as a C string that lives as long as the process.</summary>
    private static readonly nint EntryPoint = Silk.NET.Core.Native.SilkMarshal.StringToPtr("main");

    /// <summary>Names of the embedded shaders ("gelu", "sum_of_squares.SUBGROUPS", ...).</summary>
    public static IReadOnlyList<string> EmbeddedShaders() =>
        typeof(Pipelines).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix) && n.EndsWith(".spv"))
            .Select(n => n[ResourcePrefix.Length..^4]).Order().ToArray();

    /// <summary>The pipeline of <paramref name="shader"/> (compiled with -D<paramref name="variant"/> when given) with
    /// constant_id i = <paramref name="specialization"/>[i].</summary>
    public Entry Get(string shader, string? variant, int bindings, ReadOnlySpan<uint> specialization)
    {
        string name = variant is null ? shader : $"{shader}.{variant}";
        string key = $"{name}/{bindings}/{string.Join(",", specialization.ToArray())}";
        if (pipelines.TryGetValue(key, out var entry)) return entry;

        var module = Module(name);
        var (setLayout, layout) = Layout(bindings);
        var map = new SpecializationMapEntry[specialization.Length];
        for (int i = 0; i < map.Length; i++) map[i] = new SpecializationMapEntry((uint)i, (uint)(i * 4), 4);
        Pipeline pipeline;
        fixed (SpecializationMapEntry* pMap = map)
        fixed (uint* values = specialization)
        {
            var spec = new SpecializationInfo
            {
                MapEntryCount = (uint)map.Length, PMapEntries = pMap, DataSize = (nuint)(specialization.Length * 4), PData = values,
            };
            var info = new ComputePipelineCreateInfo
            {
                SType = StructureType.ComputePipelineCreateInfo,
                Layout = layout,
                Stage = new PipelineShaderStageCreateInfo
                {
                    SType = StructureType.PipelineShaderStageCreateInfo,
                    Stage = ShaderStageFlags.ComputeBit,
                    Module = module,
                    PName = (byte*)EntryPoint,
                    PSpecializationInfo = &spec,
                },
            };
            VulkanException.Check(context.Vk.CreateComputePipelines(context.Device, cache, 1, &info, null, &pipeline),
                $"vkCreateComputePipelines ({key})");
        }
        entry = new Entry(pipeline, layout, setLayout, bindings);
        pipelines[key] = entry;
        return entry;
    }

    private ShaderModule Module(string name)
    {
        if (modules.TryGetValue(name, out var module)) return module;
        using var stream = typeof(Pipelines).Assembly.GetManifestResourceStream(ResourcePrefix + name + ".spv")
            ?? throw new InvalidOperationException(
                $"shader '{name}' is not embedded in Llm.Vulkan (add Vulkan/Shaders/<shader>.comp, or the variant to its Variants metadata); embedded: {string.Join(", ", EmbeddedShaders())}");
        var code = new byte[stream.Length];
        stream.ReadExactly(code);
        fixed (byte* p = code)
        {
            var info = new ShaderModuleCreateInfo { SType = StructureType.ShaderModuleCreateInfo, CodeSize = (nuint)code.Length, PCode = (uint*)p };
            VulkanException.Check(context.Vk.CreateShaderModule(context.Device, &info, null, &module), $"vkCreateShaderModule ({name})");
        }
        modules[name] = module;
        return module;
    }

    private (DescriptorSetLayout, PipelineLayout) Layout(int bindings)
    {
        if (layouts.TryGetValue(bindings, out var found)) return found;
        var vk = context.Vk;
        var slots = new DescriptorSetLayoutBinding[bindings];
        for (int i = 0; i < bindings; i++)
            slots[i] = new DescriptorSetLayoutBinding((uint)i, DescriptorType.StorageBuffer, 1, ShaderStageFlags.ComputeBit);
        DescriptorSetLayout setLayout;
        fixed (DescriptorSetLayoutBinding* p = slots)
        {
            var info = new DescriptorSetLayoutCreateInfo { SType = StructureType.DescriptorSetLayoutCreateInfo, BindingCount = (uint)bindings, PBindings = p };
            VulkanException.Check(vk.CreateDescriptorSetLayout(context.Device, &info, null, &setLayout), "vkCreateDescriptorSetLayout");
        }
        var range = new PushConstantRange(ShaderStageFlags.ComputeBit, 0, PushConstantBytes);
        var layoutInfo = new PipelineLayoutCreateInfo
        {
            SType = StructureType.PipelineLayoutCreateInfo, SetLayoutCount = 1, PSetLayouts = &setLayout, PushConstantRangeCount = 1, PPushConstantRanges = &range,
        };
        PipelineLayout layout;
        VulkanException.Check(vk.CreatePipelineLayout(context.Device, &layoutInfo, null, &layout), "vkCreatePipelineLayout");
        layouts[bindings] = (setLayout, layout);
        return (setLayout, layout);
    }

    /// <summary>Writes the pipeline cache to disk (best effort: a read-only home only costs compile time next run).</summary>
    public void Save()
    {
        var vk = context.Vk;
        nuint size = 0;
        if (vk.GetPipelineCacheData(context.Device, cache, &size, null) < 0 || size == 0) return;
        var data = new byte[size];
        fixed (byte* p = data)
            if (vk.GetPipelineCacheData(context.Device, cache, &size, p) < 0) return;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(cachePath)!);
            string temp = cachePath + ".tmp";
            File.WriteAllBytes(temp, data.AsSpan(0, (int)size).ToArray());
            File.Move(temp, cachePath, overwrite: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    public void Dispose()
    {
        var vk = context.Vk;
        Save();
        foreach (var e in pipelines.Values) vk.DestroyPipeline(context.Device, e.Pipeline, null);
        foreach (var (set, layout) in layouts.Values)
        {
            vk.DestroyPipelineLayout(context.Device, layout, null);
            vk.DestroyDescriptorSetLayout(context.Device, set, null);
        }
        foreach (var m in modules.Values) vk.DestroyShaderModule(context.Device, m, null);
        vk.DestroyPipelineCache(context.Device, cache, null);
    }
}
