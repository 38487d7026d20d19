using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Llm.Tensors;
using Silk.NET.Vulkan;

namespace Llm.Vulkan;

/// <summary>Push constants of a shader that needs nothing beyond the binding offsets.</summary>
internal readonly struct NoPushConstants;

/// <summary>
/// The one way ops run shaders. An op validates its tensors, then calls
/// <c>Dispatch("gelu", groupsX, 1, 1, new Push(n), reads: [input], writes: [output])</c>.
/// </summary>
public sealed partial class VulkanBackend
{
    /// <summary>
    /// Records one compute dispatch of Shaders/<paramref name="shader"/>.comp (or its <paramref name="variant"/>).
    /// Bindings: set 0, binding i = (reads ++ writes)[i]; a tensor in <paramref name="writes"/> may also be read by the
    /// shader (accumulation). Each descriptor starts at the largest minStorageBufferOffsetAlignment multiple at or
    /// below the tensor's first byte; the push-constant block receives <c>uint offsets[bindings]</c> (the tensor's element offset
    /// from there) followed by the bytes of <paramref name="pushConstants"/> (4-byte scalars only).
    /// Specialization constant i = <paramref name="specialization"/>[i]; when empty it is [<see cref="LinearWorkgroupSize"/>]
    /// (constant 0 is local_size_x, 1 and 2 local_size_y/z, op constants from 3).
    /// A barrier is recorded first only if this dispatch touches what an earlier unbarriered command wrote (or writes
    /// what one read). Zero groups records nothing.
    /// </summary>
    internal unsafe void Dispatch<TPush>(string shader, uint groupsX, uint groupsY, uint groupsZ, TPush pushConstants,
        ReadOnlySpan<Tensor> reads, ReadOnlySpan<Tensor> writes, ReadOnlySpan<uint> specialization = default, string? variant = null)
        where TPush : unmanaged
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        int bindings = reads.Length + writes.Length;
        if (bindings > CommandRecorder.MaxBindings)
            throw new ArgumentException($"{shader}: {bindings} tensors; a dispatch binds at most {CommandRecorder.MaxBindings}");
        int pushBytes = 4 * bindings + Unsafe.SizeOf<TPush>() * (typeof(TPush) == typeof(NoPushConstants) ? 0 : 1);
        if (pushBytes > Pipelines.PushConstantBytes || pushBytes % 4 != 0)
            throw new ArgumentException($"{shader}: {pushBytes} bytes of push constants (offsets + {typeof(TPush).Name}); at most {Pipelines.PushConstantBytes}, a multiple of 4");
        var limits = Info.MaxComputeWorkGroupCount;
        if (groupsX > limits[0] || groupsY > limits[1] || groupsZ > limits[2])
            throw new ArgumentException($"{shader}: {groupsX}×{groupsY}×{groupsZ} workgroups exceed the device's [{string.Join(", ", limits)}]");
        if (groupsX == 0 || groupsY == 0 || groupsZ == 0) return;

        Span<BufferRange> ranges = stackalloc BufferRange[bindings];
        var infos = stackalloc DescriptorBufferInfo[bindings];
        byte* push = stackalloc byte[(int)Pipelines.PushConstantBytes];
        for (int i = 0; i < bindings; i++)
        {
            var t = i < reads.Length ? reads[i] : writes[i - reads.Length];
            if (t.DType is not (DType.F32 or DType.I32))
                throw new NotSupportedException($"{shader}: {t.Describe()} is not F32 or I32");
            ranges[i] = RangeOf(t);
            ulong alignment = Limits.Slack;
            ulong start = ranges[i].Start / alignment * alignment;
            ulong size = Math.Max(ranges[i].End - start, 4);
            if (size > Limits.BindingRange)
                throw new ArgumentException($"{shader}: {t.Describe()} spans {size} bytes, more than one binding ({Limits.BindingRange} B: maxStorageBufferRange of '{Info.Name}' or the MaxBindingBytes option); split the op into slices");
            infos[i] = new DescriptorBufferInfo(Buffer(t).Block.Buffer, start, size);
            ((uint*)push)[i] = (uint)((ranges[i].Start - start) / 4);
            // Hazards are tracked on what is bound, not on the tensor: synchronization validation sees the whole descriptor.
            ranges[i] = ranges[i] with { Start = start, End = start + size };
        }
        if (typeof(TPush) != typeof(NoPushConstants)) Unsafe.Write(push + 4 * bindings, pushConstants);

        uint linear = LinearWorkgroupSize;
        var entry = pipelines.Get(shader, variant, bindings, specialization.IsEmpty ? new ReadOnlySpan<uint>(in linear) : specialization);
        recorder.Access(ranges[..reads.Length], ranges[reads.Length..]);
        var set = recorder.AllocateDescriptorSet(entry.SetLayout);
        var writesInfo = stackalloc WriteDescriptorSet[bindings];
        for (int i = 0; i < bindings; i++)
            writesInfo[i] = new WriteDescriptorSet
            {
                SType = StructureType.WriteDescriptorSet, DstSet = set, DstBinding = (uint)i, DescriptorCount = 1,
                DescriptorType = DescriptorType.StorageBuffer, PBufferInfo = infos + i,
            };
        var vk = context.Vk;
        vk.UpdateDescriptorSets(context.Device, (uint)bindings, writesInfo, 0, null);
        var commands = recorder.Commands;
        vk.CmdBindPipeline(commands, PipelineBindPoint.Compute, entry.Pipeline);
        vk.CmdBindDescriptorSets(commands, PipelineBindPoint.Compute, entry.Layout, 0, 1, &set, 0, null);
        if (pushBytes > 0) vk.CmdPushConstants(commands, entry.Layout, ShaderStageFlags.ComputeBit, 0, (uint)pushBytes, push);
        vk.CmdDispatch(commands, groupsX, groupsY, groupsZ);
        recorder.Dispatched();
    }

    /// <summary><see cref="Dispatch{TPush}"/> for a shader whose push constants are only the binding offsets.</summary>
    internal void Dispatch(string shader, uint groupsX, uint groupsY, uint groupsZ,
        ReadOnlySpan<Tensor> reads, ReadOnlySpan<Tensor> writes, ReadOnlySpan<uint> specialization = default, string? variant = null) =>
        Dispatch(shader, groupsX, groupsY, groupsZ, default(NoPushConstants), reads, writes, specialization, variant);

    /// <summary>Workgroups for a 1-D grid-stride kernel over <paramref name="n"/> elements: ⌈n / workgroup⌉, capped.</summary>
    internal uint LinearGroups(long n, uint? workgroupSize = null)
    {
        long size = workgroupSize ?? LinearWorkgroupSize;
        return (uint)Math.Min((n + size - 1) / size, MaxGroupsX);
    }

    /// <summary>The variant of a reduction shader: "SUBGROUPS" when subgroup arithmetic is enabled, else "NO_SUBGROUPS".</summary>
    internal string ReductionVariant => Info.SubgroupsEnabled ? "SUBGROUPS" : "NO_SUBGROUPS";

    /// <summary>Most rows of <paramref name="rowElements"/> floats one binding may span (<see cref="DispatchLimits.TensorBytes"/>); at least 1.</summary>
    internal int RowsPerBinding(int rowElements) =>
        (int)Math.Clamp(Limits.TensorBytes / (4 * (ulong)Math.Max(rowElements, 1)), 1, int.MaxValue);
}
