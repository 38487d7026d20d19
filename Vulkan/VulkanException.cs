using Silk.NET.Vulkan;

namespace Llm.Vulkan;

/// <summary>A Vulkan call that returned an error: carries the <see cref="VkResult"/> and the operation that failed,
/// with a hint for the results a user can act on (out of memory, lost device, missing driver).</summary>
public sealed class VulkanException : Exception
{
    public Result VkResult { get; }
    public string Operation { get; }

    public VulkanException(Result result, string operation)
        : base($"Vulkan {operation} failed with {result}{Hint(result)}")
    {
        VkResult = result;
        Operation = operation;
    }

    public VulkanException(string message) : base(message)
    {
        VkResult = Result.ErrorUnknown;
        Operation = "";
    }

    private static string Hint(Result result) => result switch
    {
        Result.ErrorOutOfDeviceMemory => ": the GPU is out of memory (use a smaller model, batch or sequence length)",
        Result.ErrorOutOfHostMemory => ": the host is out of memory",
        Result.ErrorDeviceLost => ": the device was lost (driver reset, a shader ran too long, or an out-of-bounds access)",
        Result.ErrorIncompatibleDriver => ": no Vulkan 1.2 driver (install mesa-vulkan-drivers or the GPU vendor's driver)",
        Result.ErrorLayerNotPresent => ": a requested layer is missing",
        Result.ErrorExtensionNotPresent => ": a requested extension is missing",
        _ => "",
    };

    /// <summary>Throws unless <paramref name="result"/> is Success (or another non-error code).</summary>
    public static void Check(Result result, string operation)
    {
        if (result < 0) throw new VulkanException(result, operation);
    }
}
