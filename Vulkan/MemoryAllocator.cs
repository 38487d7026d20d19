using Silk.NET.Vulkan;
using VkBuffer = Silk.NET.Vulkan.Buffer;

namespace Llm.Vulkan;

/// <summary>
/// A byte range of one device memory block: the <see cref="Llm.Tensors.Tensor.Storage"/> of every Vulkan tensor.
/// Views (Tensor.Slice) share it and add their element offset.
/// </summary>
public sealed class VulkanBuffer
{
    internal VulkanBuffer(MemoryBlock block, ulong byteOffset, ulong byteSize)
    {
        Block = block;
        ByteOffset = byteOffset;
        ByteSize = byteSize;
    }

    internal MemoryBlock Block { get; }
    /// <summary>Start of this allocation inside its block, in bytes.</summary>
    public ulong ByteOffset { get; }
    public ulong ByteSize { get; }
    public bool Released { get; internal set; }

    public override string ToString() => $"block {Block.Id} [{ByteOffset}, {ByteOffset + ByteSize})";
}

/// <summary>One VkDeviceMemory with one VkBuffer over all of it; tensors are ranges of that buffer.</summary>
internal sealed class MemoryBlock(int id, DeviceMemory memory, VkBuffer buffer, ulong size)
{
    public int Id { get; } = id;
    public DeviceMemory Memory { get; } = memory;
    public VkBuffer Buffer { get; } = buffer;
    public ulong Size { get; } = size;
    /// <summary>Free ranges sorted by offset, never adjacent (coalesced on free).</summary>
    public List<(ulong Offset, ulong Size)> Free { get; } = [(0, size)];
}

/// <summary>
/// Sub-allocates tensors from large device-local blocks (256 MiB, or one block sized to a larger tensor) with a
/// first-fit free list; every allocation starts at a multiple of minStorageBufferOffsetAlignment.
/// </summary>
internal sealed unsafe class MemoryAllocator(VulkanContext context) : IDisposable
{
    public const ulong DefaultBlockSize = 256UL << 20;
    private const BufferUsageFlags Usage =
        BufferUsageFlags.StorageBufferBit | BufferUsageFlags.TransferSrcBit | BufferUsageFlags.TransferDstBit;

    private readonly List<MemoryBlock> blocks = [];
    private readonly ulong alignment = Math.Max(context.Info.MinStorageBufferOffsetAlignment, 16);

    public ulong BytesAllocated { get; private set; }
    public ulong BytesReserved => blocks.Aggregate(0UL, (sum, b) => sum + b.Size);

    public VulkanBuffer Allocate(ulong bytes, string what)
    {
        ulong size = AlignUp(Math.Max(bytes, 4), alignment);
        if (size > context.Info.MaxMemoryAllocationSize)
            throw new ArgumentException($"{what} needs {bytes} bytes, more than the device's maxMemoryAllocationSize ({context.Info.MaxMemoryAllocationSize} bytes) on '{context.Info.Name}'");
        foreach (var block in blocks)
            if (TryTake(block, size) is ulong offset) return Allocated(block, offset, size);
        var fresh = CreateBlock(Math.Max(size, Math.Min(DefaultBlockSize, context.Info.MaxMemoryAllocationSize)));
        return Allocated(fresh, TryTake(fresh, size)!.Value, size);
    }

    private VulkanBuffer Allocated(MemoryBlock block, ulong offset, ulong size)
    {
        BytesAllocated += size;
        return new VulkanBuffer(block, offset, size);
    }

    /// <summary>First fit: the lowest free range that holds <paramref name="size"/>.</summary>
    private static ulong? TryTake(MemoryBlock block, ulong size)
    {
        var free = block.Free;
        for (int i = 0; i < free.Count; i++)
        {
            var (offset, length) = free[i];
            if (length < size) continue;
            if (length == size) free.RemoveAt(i);
            else free[i] = (offset + size, length - size);
            return offset;
        }
        return null;
    }

    /// <summary>Returns the range to its block's free list, merging with free neighbours.</summary>
    public void Free(VulkanBuffer buffer)
    {
        if (buffer.Released) return;
        buffer.Released = true;
        BytesAllocated -= buffer.ByteSize;
        var free = buffer.Block.Free;
        ulong start = buffer.ByteOffset, end = buffer.ByteOffset + buffer.ByteSize;
        int i = 0;
        while (i < free.Count && free[i].Offset < start) i++;
        if (i < free.Count && free[i].Offset == end)
        {
            end += free[i].Size;
            free.RemoveAt(i);
        }
        if (i > 0 && free[i - 1].Offset + free[i - 1].Size == start)
        {
            start = free[i - 1].Offset;
            free.RemoveAt(--i);
        }
        free.Insert(i, (start, end - start));
    }

    private MemoryBlock CreateBlock(ulong size)
    {
        var (buffer, memory) = CreateBuffer(context, size, Usage, MemoryPropertyFlags.DeviceLocalBit, MemoryPropertyFlags.DeviceLocalBit, "device memory block");
        var block = new MemoryBlock(blocks.Count, memory, buffer, size);
        blocks.Add(block);
        return block;
    }

    /// <summary>A buffer with its own memory; memory type chosen by <paramref name="required"/>/<paramref name="preferred"/>.</summary>
    public static (VkBuffer Buffer, DeviceMemory Memory) CreateBuffer(VulkanContext context, ulong size, BufferUsageFlags usage,
        MemoryPropertyFlags required, MemoryPropertyFlags preferred, string what)
    {
        var vk = context.Vk;
        var info = new BufferCreateInfo
        {
            SType = StructureType.BufferCreateInfo, Size = size, Usage = usage, SharingMode = SharingMode.Exclusive,
        };
        VkBuffer buffer;
        VulkanException.Check(vk.CreateBuffer(context.Device, &info, null, &buffer), $"vkCreateBuffer ({what}, {size} bytes)");
        MemoryRequirements requirements;
        vk.GetBufferMemoryRequirements(context.Device, buffer, &requirements);
        var allocate = new MemoryAllocateInfo
        {
            SType = StructureType.MemoryAllocateInfo,
            AllocationSize = requirements.Size,
            MemoryTypeIndex = context.FindMemoryType(requirements.MemoryTypeBits, required, preferred | required),
        };
        DeviceMemory memory;
        var result = vk.AllocateMemory(context.Device, &allocate, null, &memory);
        if (result < 0)
        {
            vk.DestroyBuffer(context.Device, buffer, null);
            throw new VulkanException(result, $"vkAllocateMemory ({what}, {requirements.Size} bytes)");
        }
        VulkanException.Check(vk.BindBufferMemory(context.Device, buffer, memory, 0), $"vkBindBufferMemory ({what})");
        return (buffer, memory);
    }

    public static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) / alignment * alignment;

    public void Dispose()
    {
        foreach (var block in blocks)
        {
            context.Vk.DestroyBuffer(context.Device, block.Buffer, null);
            context.Vk.FreeMemory(context.Device, block.Memory, null);
        }
        blocks.Clear();
    }
}
