using Silk.NET.Vulkan;
using VkBuffer = Silk.NET.Vulkan.Buffer;

namespace Llm.Vulkan;

/// <summary>
/// One host-visible, persistently mapped buffer for downloads, reused by every download (each waits for its copy, so
/// one buffer suffices; uploads use the batches' own, CommandRecorder.ReserveUpload). It grows to the largest transfer, up to <see cref="MaxBytes"/>;
/// larger transfers go through it in chunks.
/// </summary>
internal sealed unsafe class Staging(VulkanContext context) : IDisposable
{
    public const ulong MaxBytes = 64UL << 20;
    private const ulong MinBytes = 1UL << 20;

    private VkBuffer buffer;
    private DeviceMemory memory;
    private ulong capacity;

    public VkBuffer Buffer => buffer;
    public byte* Mapped { get; private set; }

    /// <summary>Makes room for min(<paramref name="bytes"/>, MaxBytes) and returns the chunk size to use.</summary>
    public ulong Reserve(ulong bytes)
    {
        ulong wanted = Math.Clamp(bytes, MinBytes, MaxBytes);
        if (wanted > capacity)
        {
            Dispose();
            // Host-cached memory makes downloads fast where it exists; coherent so no flush/invalidate is needed.
            (buffer, memory) = MemoryAllocator.CreateBuffer(context, wanted,
                BufferUsageFlags.TransferSrcBit | BufferUsageFlags.TransferDstBit,
                MemoryPropertyFlags.HostVisibleBit | MemoryPropertyFlags.HostCoherentBit, MemoryPropertyFlags.HostCachedBit, "staging buffer");
            void* p;
            VulkanException.Check(context.Vk.MapMemory(context.Device, memory, 0, wanted, 0, &p), "vkMapMemory (staging buffer)");
            Mapped = (byte*)p;
            capacity = wanted;
        }
        return Math.Min(bytes, capacity);
    }

    public void Dispose()
    {
        if (capacity == 0) return;
        context.Vk.UnmapMemory(context.Device, memory);
        context.Vk.DestroyBuffer(context.Device, buffer, null);
        context.Vk.FreeMemory(context.Device, memory, null);
        capacity = 0;
        Mapped = null;
    }
}
