using Silk.NET.Vulkan;
using VkBuffer = Silk.NET.Vulkan.Buffer;

namespace Llm.Vulkan;

/// <summary>Bytes [Start, End) of one memory block: what a dispatch or a copy reads or writes.</summary>
internal readonly record struct BufferRange(int Block, ulong Start, ulong End)
{
    public bool Overlaps(BufferRange other) => Block == other.Block && Start < other.End && other.Start < End;
}

/// <summary>
/// Records dispatches and copies into a ring of command buffers ("batches"), each with its fence, descriptor pool and
/// upload staging buffer. A batch is submitted when the host needs results (download, Synchronize), after
/// <see cref="MaxDispatchesPerBatch"/> dispatches, when its staging buffer is full, or early, every
/// <see cref="EarlySubmitDispatches"/> dispatches while the queue has nothing left to run (so the device starts on a
/// step's first ops while the host records the rest); a batch is reused once its fence has signalled, its pool reset.
/// Hazards are tracked per buffer range: a barrier is recorded only when a command reads or writes what an earlier
/// not-yet-barriered command wrote, or writes what one read; the barrier then covers everything before it.
/// </summary>
internal sealed unsafe class CommandRecorder : IDisposable
{
    public const int MaxDispatchesPerBatch = 256;
    public const int MaxBindings = 16;
    public const int EarlySubmitDispatches = 16;
    /// <summary>Most bytes of one batch's upload staging buffer; a larger upload fills several batches.</summary>
    public const ulong MaxUploadBytes = 32UL << 20;
    private const int BatchCount = 3;
    private const int MaxTrackedRanges = 64;   // beyond this, a barrier is cheaper than scanning

    private sealed class Batch
    {
        public CommandBuffer Commands;
        public Fence Fence;
        public DescriptorPool Descriptors;
        public bool Submitted;
        public VkBuffer Upload;        // host-visible, mapped: what this batch's uploads copy from
        public DeviceMemory UploadMemory;
        public byte* UploadMapped;
        public ulong UploadCapacity, UploadUsed;
    }

    private readonly VulkanContext context;
    private readonly CommandPool pool;
    private readonly Batch[] batches = new Batch[BatchCount];
    private readonly List<BufferRange> pendingWrites = [], pendingReads = [];
    private int current;
    private bool recording;
    private int dispatchesInBatch;

    public long Dispatches { get; private set; }
    public long Barriers { get; private set; }
    public long Submits { get; private set; }

    public CommandRecorder(VulkanContext context)
    {
        this.context = context;
        var vk = context.Vk;
        var poolInfo = new CommandPoolCreateInfo
        {
            SType = StructureType.CommandPoolCreateInfo,
            Flags = CommandPoolCreateFlags.ResetCommandBufferBit,
            QueueFamilyIndex = context.QueueFamily,
        };
        CommandPool commandPool;
        VulkanException.Check(vk.CreateCommandPool(context.Device, &poolInfo, null, &commandPool), "vkCreateCommandPool");
        pool = commandPool;
        for (int i = 0; i < BatchCount; i++) batches[i] = CreateBatch();
    }

    private Batch CreateBatch()
    {
        var vk = context.Vk;
        var batch = new Batch();
        var allocate = new CommandBufferAllocateInfo
        {
            SType = StructureType.CommandBufferAllocateInfo, CommandPool = pool, Level = CommandBufferLevel.Primary, CommandBufferCount = 1,
        };
        VulkanException.Check(vk.AllocateCommandBuffers(context.Device, &allocate, out batch.Commands), "vkAllocateCommandBuffers");
        var fenceInfo = new FenceCreateInfo { SType = StructureType.FenceCreateInfo };
        VulkanException.Check(vk.CreateFence(context.Device, &fenceInfo, null, out batch.Fence), "vkCreateFence");
        var size = new DescriptorPoolSize(DescriptorType.StorageBuffer, MaxDispatchesPerBatch * MaxBindings);
        var descriptorInfo = new DescriptorPoolCreateInfo
        {
            SType = StructureType.DescriptorPoolCreateInfo, MaxSets = MaxDispatchesPerBatch, PoolSizeCount = 1, PPoolSizes = &size,
        };
        VulkanException.Check(vk.CreateDescriptorPool(context.Device, &descriptorInfo, null, out batch.Descriptors), "vkCreateDescriptorPool");
        return batch;
    }

    /// <summary>The command buffer being recorded, starting it (after its previous use finished) if needed.</summary>
    public CommandBuffer Commands
    {
        get
        {
            var batch = batches[current];
            if (recording) return batch.Commands;
            var vk = context.Vk;
            if (batch.Submitted) Wait(batch);
            VulkanException.Check(vk.ResetDescriptorPool(context.Device, batch.Descriptors, 0), "vkResetDescriptorPool");
            batch.UploadUsed = 0;
            VulkanException.Check(vk.ResetCommandBuffer(batch.Commands, 0), "vkResetCommandBuffer");
            var begin = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = CommandBufferUsageFlags.OneTimeSubmitBit };
            VulkanException.Check(vk.BeginCommandBuffer(batch.Commands, &begin), "vkBeginCommandBuffer");
            recording = true;
            dispatchesInBatch = 0;
            return batch.Commands;
        }
    }

    /// <summary>Declares what the next command reads and writes; records a barrier first when it must wait.</summary>
    public void Access(ReadOnlySpan<BufferRange> reads, ReadOnlySpan<BufferRange> writes)
    {
        bool hazard = pendingWrites.Count + pendingReads.Count + writes.Length > MaxTrackedRanges;
        foreach (var r in reads) hazard |= OverlapsAny(pendingWrites, r);                                   // read after write
        foreach (var w in writes) hazard |= OverlapsAny(pendingWrites, w) || OverlapsAny(pendingReads, w);  // write after write / read
        if (hazard) Barrier();
        foreach (var r in reads) pendingReads.Add(r);
        foreach (var w in writes) pendingWrites.Add(w);
    }

    private static bool OverlapsAny(List<BufferRange> ranges, BufferRange range)
    {
        foreach (var r in ranges) if (r.Overlaps(range)) return true;
        return false;
    }

    /// <summary>A global compute/transfer → compute/transfer memory barrier; clears the hazard tracking.</summary>
    public void Barrier()
    {
        const PipelineStageFlags stages = PipelineStageFlags.ComputeShaderBit | PipelineStageFlags.TransferBit;
        var barrier = new MemoryBarrier
        {
            SType = StructureType.MemoryBarrier,
            SrcAccessMask = AccessFlags.ShaderWriteBit | AccessFlags.TransferWriteBit,
            DstAccessMask = AccessFlags.ShaderReadBit | AccessFlags.ShaderWriteBit | AccessFlags.TransferReadBit | AccessFlags.TransferWriteBit,
        };
        context.Vk.CmdPipelineBarrier(Commands, stages, stages, 0, 1, &barrier, 0, null, 0, null);
        pendingWrites.Clear();
        pendingReads.Clear();
        Barriers++;
    }

    /// <summary>Makes transfer writes (into a staging buffer) visible to the host after the fence wait.</summary>
    public void HostReadBarrier()
    {
        var barrier = new MemoryBarrier
        {
            SType = StructureType.MemoryBarrier, SrcAccessMask = AccessFlags.TransferWriteBit, DstAccessMask = AccessFlags.HostReadBit,
        };
        context.Vk.CmdPipelineBarrier(Commands, PipelineStageFlags.TransferBit, PipelineStageFlags.HostBit, 0, 1, &barrier, 0, null, 0, null);
    }

    /// <summary>A descriptor set from the current batch's pool (freed when the batch is reused).</summary>
    public DescriptorSet AllocateDescriptorSet(DescriptorSetLayout layout)
    {
        _ = Commands;
        var info = new DescriptorSetAllocateInfo
        {
            SType = StructureType.DescriptorSetAllocateInfo, DescriptorPool = batches[current].Descriptors, DescriptorSetCount = 1, PSetLayouts = &layout,
        };
        DescriptorSet set;
        VulkanException.Check(context.Vk.AllocateDescriptorSets(context.Device, &info, &set), "vkAllocateDescriptorSets");
        return set;
    }

    /// <summary>Counts a recorded dispatch; submits the batch when it is full, or early while the queue is idle.</summary>
    public void Dispatched()
    {
        Dispatches++;
        if (++dispatchesInBatch >= MaxDispatchesPerBatch || (dispatchesInBatch % EarlySubmitDispatches == 0 && QueueIdle())) Submit();
    }

    /// <summary>Every submitted batch has finished (fence status, without waiting).</summary>
    private bool QueueIdle()
    {
        foreach (var batch in batches)
            if (batch.Submitted && context.Vk.GetFenceStatus(context.Device, batch.Fence) != Result.Success) return false;
        return true;
    }

    /// <summary>Room for up to <paramref name="bytes"/> in the recording batch's upload staging buffer: where to write
    /// them (mapped) and the buffer offset to copy from; fewer bytes when it is full (the caller loops). A full batch
    /// is submitted and the next one is used, which waits only for that batch's previous use. The host writes land
    /// before the batch's vkQueueSubmit, which makes them visible to its copies.</summary>
    public (VkBuffer Buffer, ulong Offset, nint Mapped, ulong Size) ReserveUpload(ulong bytes)
    {
        _ = Commands;
        var batch = batches[current];
        if (batch.UploadUsed > 0 && batch.UploadUsed + Math.Min(bytes, 64UL << 10) > batch.UploadCapacity)
        {
            Submit();
            _ = Commands;
            batch = batches[current];
        }
        ulong wanted = Math.Clamp(bytes, 1UL << 20, MaxUploadBytes);
        if (batch.UploadUsed == 0 && batch.UploadCapacity < wanted)   // nothing recorded reads the old buffer
        {
            DestroyUpload(batch);
            (batch.Upload, batch.UploadMemory) = MemoryAllocator.CreateBuffer(context, wanted, BufferUsageFlags.TransferSrcBit,
                MemoryPropertyFlags.HostVisibleBit | MemoryPropertyFlags.HostCoherentBit, 0, "upload staging buffer");
            void* p;
            VulkanException.Check(context.Vk.MapMemory(context.Device, batch.UploadMemory, 0, wanted, 0, &p), "vkMapMemory (upload staging)");
            batch.UploadMapped = (byte*)p;
            batch.UploadCapacity = wanted;
        }
        ulong offset = batch.UploadUsed, size = Math.Min(bytes, batch.UploadCapacity - offset);
        batch.UploadUsed = Math.Min(batch.UploadCapacity, (offset + size + 15) / 16 * 16);
        return (batch.Upload, offset, (nint)(batch.UploadMapped + offset), size);
    }

    private void DestroyUpload(Batch batch)
    {
        if (batch.UploadCapacity == 0) return;
        var vk = context.Vk;
        vk.UnmapMemory(context.Device, batch.UploadMemory);
        vk.DestroyBuffer(context.Device, batch.Upload, null);
        vk.FreeMemory(context.Device, batch.UploadMemory, null);
        batch.UploadCapacity = 0;
    }

    /// <summary>Ends and submits the batch being recorded (if any) without waiting for it.</summary>
    public void Submit()
    {
        if (!recording) return;
        var vk = context.Vk;
        var batch = batches[current];
        VulkanException.Check(vk.EndCommandBuffer(batch.Commands), "vkEndCommandBuffer");
        var commands = batch.Commands;
        var submit = new SubmitInfo { SType = StructureType.SubmitInfo, CommandBufferCount = 1, PCommandBuffers = &commands };
        VulkanException.Check(vk.QueueSubmit(context.Queue, 1, &submit, batch.Fence), "vkQueueSubmit");
        batch.Submitted = true;
        recording = false;
        Submits++;
        current = (current + 1) % BatchCount;
    }

    /// <summary>Submits what is recorded and waits for every submitted batch.</summary>
    public void Synchronize()
    {
        Submit();
        foreach (var batch in batches)
            if (batch.Submitted) Wait(batch);
    }

    private void Wait(Batch batch)
    {
        var vk = context.Vk;
        var fence = batch.Fence;
        VulkanException.Check(vk.WaitForFences(context.Device, 1, &fence, true, ulong.MaxValue), "vkWaitForFences");
        VulkanException.Check(vk.ResetFences(context.Device, 1, &fence), "vkResetFences");
        batch.Submitted = false;
    }

    public void Dispose()
    {
        var vk = context.Vk;
        if (recording) vk.EndCommandBuffer(batches[current].Commands);
        vk.QueueWaitIdle(context.Queue);
        foreach (var batch in batches)
        {
            vk.DestroyFence(context.Device, batch.Fence, null);
            vk.DestroyDescriptorPool(context.Device, batch.Descriptors, null);
            DestroyUpload(batch);
        }
        vk.DestroyCommandPool(context.Device, pool, null);
    }
}
