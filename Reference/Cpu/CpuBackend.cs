using System.Runtime.InteropServices;
using Llm.Tensors;

namespace Llm.Cpu;

/// <summary>
/// The Reference backend: tensors are managed arrays (float[], double[], int[]), ops are the scalar definitions in
/// the kernel files of this folder, or, for F32 when <see cref="FastPaths"/> is on, their SIMD/multi-threaded twins
/// that are tested against those definitions. The op methods live in CpuBackend.Ops.cs.
/// </summary>
public sealed partial class CpuBackend : IBackend
{
    /// <param name="fastPaths">false runs only the scalar definitions (what the fast paths are tested against).</param>
    /// <param name="attentionKeyTile">keys per tile of the attention fast path (tests shrink it to reach the online softmax).</param>
    public CpuBackend(bool fastPaths = true, int attentionKeyTile = AttentionKernel.DefaultKeyTile)
    {
        if (attentionKeyTile < 1) throw new ArgumentOutOfRangeException(nameof(attentionKeyTile), attentionKeyTile, "a key tile holds at least one key");
        FastPaths = fastPaths;
        AttentionKeyTile = attentionKeyTile;
    }

    /// <summary>Keys per tile of the attention fast path: rows up to this long are one tile.</summary>
    public int AttentionKeyTile { get; }

    public string Name => FastPaths ? "cpu" : "cpu-definition";

    /// <summary>Use the vectorized, multi-threaded kernels for F32 (the definitions are always used for F64).</summary>
    public bool FastPaths { get; }

    public Tensor Allocate(DType dtype, int[] shape, string? name = null)
    {
        int n = Tensor.ElementCount(shape);
        object storage = dtype switch
        {
            DType.F32 => new float[n],
            DType.F64 => new double[n],
            DType.I32 => new int[n],
            _ => throw new NotSupportedException($"the CPU backend stores F32, F64 and I32 tensors, not {dtype} ({name ?? "tensor"} {Tensor.ShapeString(shape)}); convert on load"),
        };
        return new Tensor(this, dtype, shape, storage, 0, name);
    }

    /// <summary>Managed arrays are reclaimed by the garbage collector once no tensor refers to them: nothing to do.</summary>
    public void Release(Tensor tensor) => CheckOwned(tensor);

    /// <summary>One .NET array holds at most Array.MaxLength elements, whatever their type.</summary>
    public int MaxTensorElements(DType dtype) => Array.MaxLength;

    /// <summary>The elements of a CPU tensor as a span; T must match the dtype. Kernels and tests use this.</summary>
    public static Span<T> Span<T>(Tensor tensor) where T : unmanaged
    {
        if (tensor.Storage is not T[] array)
            throw new ArgumentException($"{tensor.Describe()} is not stored as {typeof(T).Name}[] on the CPU backend");
        return array.AsSpan(tensor.Offset, tensor.Length);
    }

    public void Upload<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged
    {
        CheckOwned(destination);
        if (source.Length != destination.Length)
            throw new ArgumentException($"upload of {source.Length} elements into {destination.Describe()} ({destination.Length} elements)");
        source.CopyTo(Span<T>(destination));
    }

    public void Download<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        CheckOwned(source);
        if (destination.Length != source.Length)
            throw new ArgumentException($"download of {source.Describe()} ({source.Length} elements) into {destination.Length} elements");
        Span<T>(source).CopyTo(destination);
    }

    public void Copy(Tensor source, Tensor destination)
    {
        CheckOwned(source); CheckOwned(destination);
        if (source.DType != destination.DType || source.Length != destination.Length)
            throw new ArgumentException($"copy from {source.Describe()} to {destination.Describe()}: dtype or length differ");
        switch (source.DType)
        {
            case DType.F32: Span<float>(source).CopyTo(Span<float>(destination)); break;
            case DType.F64: Span<double>(source).CopyTo(Span<double>(destination)); break;
            case DType.I32: Span<int>(source).CopyTo(Span<int>(destination)); break;
            default: throw new NotSupportedException(source.Describe());
        }
    }

    public void Fill(Tensor destination, double value)
    {
        CheckOwned(destination);
        switch (destination.DType)
        {
            case DType.F32: Span<float>(destination).Fill((float)value); break;
            case DType.F64: Span<double>(destination).Fill(value); break;
            case DType.I32: Span<int>(destination).Fill(checked((int)value)); break;
            default: throw new NotSupportedException(destination.Describe());
        }
    }

    /// <summary>CPU ops run synchronously; nothing to wait for.</summary>
    public void Synchronize() { }

    public void Dispose() { }

    private void CheckOwned(Tensor t)
    {
        if (!ReferenceEquals(t.Backend, this) && t.Backend is not CpuBackend)
            throw new ArgumentException($"{t.Describe()} belongs to backend '{t.Backend.Name}', not '{Name}'");
    }
}
