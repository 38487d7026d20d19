using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// The Vulkan compute backend: tensors are ranges of large device memory blocks (<see cref="VulkanBuffer"/>), ops
/// record compute dispatches (one GLSL shader per op, Shaders/*.comp) into batched command buffers, and results come
/// back through <see cref="Download{T}"/>, which waits for them. Only F32 and I32 tensors exist here.
/// The op methods live in one partial-class file per op group; <see cref="Dispatch{TPush}"/> is how they run shaders.
/// </summary>
public sealed partial class VulkanBackend : IBackend
{
    private readonly VulkanContext context;
    private readonly MemoryAllocator memory;
    private readonly CommandRecorder recorder;
    private readonly Pipelines pipelines;
    private readonly Staging staging;
    private bool disposed;

    /// <summary>Opens the device described by the LLM_VULKAN_* environment variables, overridden by the arguments.</summary>
    /// <param name="device">Device index in enumeration order (the CLI's --device); null = env or the best device.</param>
    /// <param name="validation">Enable the Khronos validation layer; null = LLM_VULKAN_VALIDATION.</param>
    public VulkanBackend(int? device = null, bool? validation = null)
        : this(WithOverrides(VulkanOptions.FromEnvironment(), device, validation))
    {
    }

    private static VulkanOptions WithOverrides(VulkanOptions env, int? device, bool? validation) =>
        env with { DeviceIndex = device ?? env.DeviceIndex, Validation = validation ?? env.Validation };

    public VulkanBackend(VulkanOptions options)
    {
        context = new VulkanContext(options);
        try
        {
            memory = new MemoryAllocator(context);
            recorder = new CommandRecorder(context);
            pipelines = new Pipelines(context, options.ResolveCacheDirectory());
            staging = new Staging(context);
            Limits = DispatchLimits.Of(Info, options);
            LinearWorkgroupSize = PowerOfTwoAtMost(Math.Min(256, Math.Min(Info.MaxComputeWorkGroupInvocations, Info.MaxComputeWorkGroupSize[0])));
            MaxGroupsX = Math.Min(Info.MaxComputeWorkGroupCount[0], 65535u);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    public string Name => "vulkan";

    /// <summary>The chosen device, its limits and enabled features (printed by bench and --verbose).</summary>
    public DeviceInfo Info => context.Info;

    /// <summary>Binding size and loop budget the dispatches are split by (device limits, driver quirks, options).</summary>
    public DispatchLimits Limits { get; }

    /// <summary>The raw handles, for tests and tools that call Vulkan directly.</summary>
    internal VulkanContext Context => context;
    /// <summary>The command recorder, for tests that record a command behind the hazard tracking's back.</summary>
    internal CommandRecorder Recorder => recorder;

    /// <summary>Workgroup size (specialization constant 0) of the 1-D kernels: a power of two ≤ 256 within the limits.</summary>
    public uint LinearWorkgroupSize { get; }
    /// <summary>Most workgroups along x of one dispatch; the 1-D kernels loop (grid-stride) over the rest.</summary>
    public uint MaxGroupsX { get; }

    /// <summary>Host → device bytes moved by <see cref="Upload{T}"/> since creation.</summary>
    public long BytesUploaded { get; private set; }
    /// <summary>Device → host bytes moved by <see cref="Download{T}"/> and <see cref="SumOfSquares"/>.</summary>
    public long BytesDownloaded { get; private set; }
    public long Dispatches => recorder.Dispatches;
    public long Barriers => recorder.Barriers;
    public long Submits => recorder.Submits;

    /// <summary>Everything counted so far; a step's work is <c>after - before</c> of two readings.</summary>
    public VulkanCounters Counters => new(Dispatches, Barriers, Submits, BytesUploaded, BytesDownloaded);
    /// <summary>Bytes of live tensor allocations (rounded to the alignment).</summary>
    public ulong BytesAllocated => memory.BytesAllocated;

    /// <summary>Validation-layer warnings and errors so far (empty when validation is off).</summary>
    public IReadOnlyList<string> ValidationMessages => context.Validation?.Messages ?? [];
    /// <summary>Returns the validation messages so far and clears the list.</summary>
    public IReadOnlyList<string> TakeValidationMessages() => context.Validation?.TakeMessages() ?? [];

    /// <summary>Names of the shaders embedded at build time ("gelu", "sum_of_squares.SUBGROUPS", ...).</summary>
    public static IReadOnlyList<string> EmbeddedShaders => Pipelines.EmbeddedShaders();

    /// <summary>The physical devices Vulkan sees (index, name, type), without opening one.</summary>
    public static IReadOnlyList<DeviceSummary> ListDevices() => VulkanContext.ListDevices();

    // ---- memory ------------------------------------------------------------------------------------------------------

    public Tensor Allocate(DType dtype, int[] shape, string? name = null)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        int n = Tensor.ElementCount(shape);
        if (dtype is not (DType.F32 or DType.I32))
            throw new NotSupportedException($"the Vulkan backend stores F32 and I32 tensors, not {dtype} ({name ?? "tensor"} {Tensor.ShapeString(shape)})");
        var buffer = memory.Allocate((ulong)n * 4, $"{name ?? "tensor"} {Tensor.ShapeString(shape)} {dtype}");
        var tensor = new Tensor(this, dtype, shape, buffer, 0, name);
        // Zero-fill on the device (IBackend.Allocate promises zeros; reused free-list ranges hold old data).
        var range = new BufferRange(buffer.Block.Id, buffer.ByteOffset, buffer.ByteOffset + buffer.ByteSize);
        recorder.Access([], [range]);
        context.Vk.CmdFillBuffer(recorder.Commands, buffer.Block.Buffer, buffer.ByteOffset, buffer.ByteSize, 0);
        return tensor;
    }

    /// <summary>One allocation fits in one device memory block: maxMemoryAllocationSize less the alignment slack.
    /// Every Vulkan dtype here (F32, I32) has 4-byte elements.</summary>
    public int MaxTensorElements(DType dtype) =>
        (int)Math.Min(int.MaxValue, (Info.MaxMemoryAllocationSize - Math.Max(Info.MinStorageBufferOffsetAlignment, 16)) / 4);

    /// <summary>Returns the tensor's whole storage (shared by all its views) to the allocator. Pending work that uses
    /// it stays correct: a later allocation of the same range waits for it through the hazard tracking.</summary>
    public void Release(Tensor tensor) => memory.Free(Buffer(tensor));

    public void Synchronize()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        recorder.Synchronize();
        ThrowOnIndexErrors();
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        try { recorder.Synchronize(); }
        finally
        {
            staging.Dispose();
            pipelines.Dispose();
            recorder.Dispose();
            memory.Dispose();
            context.Dispose();
        }
    }

    private static uint PowerOfTwoAtMost(uint n) => n == 0 ? 1 : 1u << (31 - System.Numerics.BitOperations.LeadingZeroCount(n));

    // ---- tensor checks -----------------------------------------------------------------------------------------------

    /// <summary>The storage of a tensor of this backend (throws naming the tensor otherwise).</summary>
    internal VulkanBuffer Buffer(Tensor t)
    {
        if (!ReferenceEquals(t.Backend, this) || t.Storage is not VulkanBuffer buffer)
            throw new ArgumentException($"{t.Describe()} belongs to backend '{t.Backend.Name}', not this Vulkan backend");
        if (buffer.Released) throw new ObjectDisposedException(t.Describe(), $"{t.Describe()} was released");
        return buffer;
    }

    /// <summary>Bytes [start, end) of the tensor's elements in its block.</summary>
    internal BufferRange RangeOf(Tensor t)
    {
        var buffer = Buffer(t);
        ulong start = buffer.ByteOffset + (ulong)t.Offset * 4;
        return new BufferRange(buffer.Block.Id, start, start + (ulong)t.Length * 4);
    }

    private static void RequireF32(string op, params Tensor[] tensors)
    {
        foreach (var t in tensors)
            if (t.DType != DType.F32) throw new NotSupportedException($"{op}: {t.Describe()} must be F32 on Vulkan");
    }

    private static void RequireI32(string op, Tensor t)
    {
        if (t.DType != DType.I32) throw new ArgumentException($"{op}: {t.Describe()} must be I32");
    }
}

/// <summary>Work recorded by a <see cref="VulkanBackend"/>: compute dispatches, pipeline barriers, queue submissions
/// and bytes moved between host and device. Subtract two readings for the work between them (e.g. one step).</summary>
public readonly record struct VulkanCounters(long Dispatches, long Barriers, long Submits, long BytesUploaded, long BytesDownloaded)
{
    public static VulkanCounters operator -(VulkanCounters after, VulkanCounters before) => new(
        after.Dispatches - before.Dispatches, after.Barriers - before.Barriers, after.Submits - before.Submits,
        after.BytesUploaded - before.BytesUploaded, after.BytesDownloaded - before.BytesDownloaded);

    public override string ToString() =>
        $"{Dispatches} dispatches, {Barriers} barriers, {Submits} submits, {BytesUploaded:N0} B up, {BytesDownloaded:N0} B down";
}
