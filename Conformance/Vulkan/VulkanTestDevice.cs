using Llm.Vulkan;
using Xunit;
using Xunit.Sdk;

namespace Llm.Conformance.Vulkan;

/// <summary>
/// Opens the Vulkan backend for tests, with the validation layer on. Without a usable device or embedded shaders the
/// tests FAIL, naming the opt-out LLM_SKIP_VULKAN=1; with it set, <see cref="Open"/> skips the test, which is then
/// reported as skipped (and counted so on test.sh's last line), never as passed. Every Vulkan test uses this:
/// <code>[SkippableFact] ... using var vk = VulkanTestDevice.Open(); ... VulkanTestDevice.AssertClean(vk);</code>
/// </summary>
public static class VulkanTestDevice
{
    public const string SkipVariable = "LLM_SKIP_VULKAN";

    public static bool Skipped => VulkanOptions.Flag(SkipVariable);

    public const string SkipReason = SkipVariable + "=1: the Vulkan tests are skipped";

    /// <summary>A validated backend (environment options, validation forced on unless <paramref name="options"/>
    /// says otherwise); skips the calling [SkippableFact] when LLM_SKIP_VULKAN=1.</summary>
    public static VulkanBackend Open(VulkanOptions? options = null)
    {
        Skip.If(Skipped, SkipReason);
        if (VulkanBackend.EmbeddedShaders.Count == 0)
            throw new XunitException($"Llm.Vulkan has no embedded shaders (was glslc run at build time?); set {SkipVariable}=1 to skip the Vulkan tests");
        try
        {
            return new VulkanBackend(options ?? VulkanOptions.FromEnvironment() with { Validation = true });
        }
        catch (Exception e) when (e is VulkanException or DllNotFoundException or FileNotFoundException or PlatformNotSupportedException)
        {
            throw new XunitException($"no usable Vulkan device: {e.Message}\nInstall mesa-vulkan-drivers (lavapipe) and vulkan-validationlayers, or set {SkipVariable}=1 to skip the Vulkan tests");
        }
    }

    /// <summary>A validated backend whose dispatches are split as if one binding held only <paramref name="maxBindingBytes"/>
    /// of a tensor and an invocation ran only <paramref name="loopIterationBudget"/> loop iterations (null: the device's
    /// own), so that the chunked and split paths run on every device.</summary>
    public static VulkanBackend OpenWithLimits(ulong? maxBindingBytes = null, long? loopIterationBudget = null) =>
        Open(VulkanOptions.FromEnvironment() with { Validation = true, MaxBindingBytes = maxBindingBytes, LoopIterationBudget = loopIterationBudget });

    /// <summary>Fails when the validation layer reported anything since the last call (and clears the list).</summary>
    public static void AssertClean(VulkanBackend backend)
    {
        backend.Synchronize();
        var messages = backend.TakeValidationMessages();
        Assert.True(messages.Count == 0, "Vulkan validation messages:\n" + string.Join("\n", messages));
    }
}
