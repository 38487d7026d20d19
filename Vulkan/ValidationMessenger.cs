using System.Runtime.InteropServices;
using Silk.NET.Core;
using Silk.NET.Core.Native;
using Silk.NET.Vulkan;

namespace Llm.Vulkan;

/// <summary>
/// The VK_EXT_debug_utils messenger of the validation layer: every warning and error it reports is kept, in order,
/// in a thread-safe list (the layer may call back from any thread). Tests fail when the list is not empty.
/// </summary>
internal sealed unsafe class ValidationMessenger : IDisposable
{
    public const string LayerName = "VK_LAYER_KHRONOS_validation";
    public const string ExtensionName = "VK_EXT_debug_utils";
    /// <summary>The layer's own extension through which synchronization validation is switched on.</summary>
    public const string FeaturesExtensionName = "VK_EXT_validation_features";

    private readonly List<string> messages = [];
    // The native side holds a pointer to this delegate: keep it referenced for the messenger's lifetime (GC).
    private readonly DebugUtilsMessengerCallbackFunctionEXT callback;
    private readonly Vk vk;
    private Instance instance;
    private DebugUtilsMessengerEXT messenger;

    public ValidationMessenger(Vk vk)
    {
        this.vk = vk;
        callback = OnMessage;
    }

    /// <summary>Throws a clear error when the layer is requested but not installed.</summary>
    public static void RequireLayer(Vk vk)
    {
        uint count = 0;
        VulkanException.Check(vk.EnumerateInstanceLayerProperties(ref count, null), "vkEnumerateInstanceLayerProperties");
        var layers = new LayerProperties[count];
        fixed (LayerProperties* p = layers)
            VulkanException.Check(vk.EnumerateInstanceLayerProperties(ref count, p), "vkEnumerateInstanceLayerProperties");
        foreach (var layer in layers)
            if (SilkMarshal.PtrToString((nint)layer.LayerName) == LayerName) return;
        throw new VulkanException(
            $"Vulkan validation was requested (LLM_VULKAN_VALIDATION=1 or the validation option) but {LayerName} is not installed: apt-get install vulkan-validationlayers");
    }

    /// <summary>The create-info for the instance's pNext (catches messages of vkCreateInstance itself) and for the messenger.</summary>
    public DebugUtilsMessengerCreateInfoEXT CreateInfo() => new()
    {
        SType = StructureType.DebugUtilsMessengerCreateInfoExt,
        MessageSeverity = DebugUtilsMessageSeverityFlagsEXT.WarningBitExt | DebugUtilsMessageSeverityFlagsEXT.ErrorBitExt,
        MessageType = DebugUtilsMessageTypeFlagsEXT.GeneralBitExt | DebugUtilsMessageTypeFlagsEXT.ValidationBitExt |
                      DebugUtilsMessageTypeFlagsEXT.PerformanceBitExt,
        PfnUserCallback = new PfnDebugUtilsMessengerCallbackEXT(callback),
    };

    /// <summary>Creates the messenger through vkGetInstanceProcAddr (debug-utils is an instance extension).</summary>
    public void Attach(Instance instance)
    {
        this.instance = instance;
        var create = (delegate* unmanaged<Instance, DebugUtilsMessengerCreateInfoEXT*, AllocationCallbacks*, DebugUtilsMessengerEXT*, Result>)
            (nint)vk.GetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT");
        if (create == null) throw new VulkanException(Result.ErrorExtensionNotPresent, "vkGetInstanceProcAddr(vkCreateDebugUtilsMessengerEXT)");
        var info = CreateInfo();
        DebugUtilsMessengerEXT handle;
        VulkanException.Check(create(instance, &info, null, &handle), "vkCreateDebugUtilsMessengerEXT");
        messenger = handle;
    }

    private uint OnMessage(DebugUtilsMessageSeverityFlagsEXT severity, DebugUtilsMessageTypeFlagsEXT type,
        DebugUtilsMessengerCallbackDataEXT* data, void* userData)
    {
        string text = SilkMarshal.PtrToString((nint)data->PMessage) ?? "(no message)";
        string level = severity.HasFlag(DebugUtilsMessageSeverityFlagsEXT.ErrorBitExt) ? "error" : "warning";
        lock (messages) messages.Add($"[{level}] {text}");
        return Vk.False;
    }

    public IReadOnlyList<string> Messages
    {
        get { lock (messages) return messages.ToArray(); }
    }

    public IReadOnlyList<string> TakeMessages()
    {
        lock (messages)
        {
            var taken = messages.ToArray();
            messages.Clear();
            return taken;
        }
    }

    public void Dispose()
    {
        if (messenger.Handle == 0) return;
        var destroy = (delegate* unmanaged<Instance, DebugUtilsMessengerEXT, AllocationCallbacks*, void>)
            (nint)vk.GetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy != null) destroy(instance, messenger, null);
        messenger = default;
        GC.KeepAlive(callback);
    }
}
