using System.Runtime.InteropServices;
using Llm.Tensors;
using Silk.NET.Vulkan;

namespace Llm.Vulkan;

/// <summary>Host ↔ device transfers through the staging buffer, and the device-side Copy.</summary>
public sealed partial class VulkanBackend
{
    public unsafe void Upload<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        RequireHostType<T>("upload", destination);
        if (source.Length != destination.Length)
            throw new ArgumentException($"upload of {source.Length} elements into {destination.Describe()} ({destination.Length} elements)");
        var bytes = MemoryMarshal.AsBytes(source);
        var target = RangeOf(destination);
        var block = Buffer(destination).Block;
        // Recorded, not waited for: each batch has its own staging buffer (CommandRecorder.ReserveUpload).
        for (ulong done = 0; done < (ulong)bytes.Length;)
        {
            var (from, offset, mapped, size) = recorder.ReserveUpload((ulong)bytes.Length - done);
            bytes.Slice((int)done, (int)size).CopyTo(new Span<byte>((void*)mapped, (int)size));
            recorder.Access([], [target with { Start = target.Start + done, End = target.Start + done + size }]);
            var region = new BufferCopy(offset, target.Start + done, size);
            context.Vk.CmdCopyBuffer(recorder.Commands, from, block.Buffer, 1, &region);
            done += size;
        }
        BytesUploaded += bytes.Length;
    }

    public unsafe void Download<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        RequireHostType<T>("download", source);
        if (destination.Length != source.Length)
            throw new ArgumentException($"download of {source.Describe()} ({source.Length} elements) into {destination.Length} elements");
        var bytes = MemoryMarshal.AsBytes(destination);
        var origin = RangeOf(source);
        var block = Buffer(source).Block;
        ulong chunk = staging.Reserve((ulong)bytes.Length);
        for (ulong done = 0; done < (ulong)bytes.Length; done += chunk)
        {
            ulong size = Math.Min(chunk, (ulong)bytes.Length - done);
            recorder.Access([origin with { Start = origin.Start + done, End = origin.Start + done + size }], []);
            var region = new BufferCopy(origin.Start + done, 0, size);
            context.Vk.CmdCopyBuffer(recorder.Commands, block.Buffer, staging.Buffer, 1, &region);
            recorder.HostReadBarrier();
            recorder.Synchronize();
            new ReadOnlySpan<byte>(staging.Mapped, (int)size).CopyTo(bytes.Slice((int)done, (int)size));
        }
        BytesDownloaded += bytes.Length;
        ThrowOnIndexErrors();   // the work is done: report a bad id or target it found (VulkanBackend.IndexErrors.cs)
    }

    /// <summary>destination = source, as a device-side buffer copy (no shader).</summary>
    public unsafe void Copy(Tensor source, Tensor destination)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (source.DType != destination.DType || source.Length != destination.Length)
            throw new ArgumentException($"copy from {source.Describe()} to {destination.Describe()}: dtype or length differ");
        if (source.Length == 0) return;
        var from = RangeOf(source);
        var to = RangeOf(destination);
        if (from.Overlaps(to) && from != to)
            throw new ArgumentException($"copy from {source.Describe()} to {destination.Describe()}: the views overlap");
        if (from == to) return;
        recorder.Access([from], [to]);
        var region = new BufferCopy(from.Start, to.Start, from.End - from.Start);
        context.Vk.CmdCopyBuffer(recorder.Commands, Buffer(source).Block.Buffer, Buffer(destination).Block.Buffer, 1, &region);
    }

    /// <summary>T must match the tensor's dtype: float for F32, int for I32.</summary>
    private static void RequireHostType<T>(string op, Tensor tensor) where T : unmanaged
    {
        bool matches = tensor.DType switch
        {
            DType.F32 => typeof(T) == typeof(float),
            DType.I32 => typeof(T) == typeof(int),
            _ => false,
        };
        if (!matches)
            throw new ArgumentException($"{op}: {typeof(T).Name} elements do not match {tensor.Describe()}");
    }
}
