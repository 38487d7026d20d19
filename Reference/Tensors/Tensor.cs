namespace Llm.Tensors;

/// <summary>
/// A shaped, typed view of memory owned by one <see cref="IBackend"/>: CPU arrays for the Reference, device buffers
/// for Vulkan. A tensor never exposes its elements directly; move data with <see cref="IBackend.Upload{T}"/> and
/// <see cref="IBackend.Download{T}"/>. Views (<see cref="Slice"/>, <see cref="Reshape"/>) share the storage, which is
/// how parameters, gradients and optimizer state live in a few large allocations handed out as named slices.
/// </summary>
public sealed class Tensor
{
    public IBackend Backend { get; }
    public DType DType { get; }
    /// <summary>Row-major shape; the last dimension is contiguous.</summary>
    public int[] Shape { get; }
    /// <summary>Number of elements (product of <see cref="Shape"/>).</summary>
    public int Length { get; }
    /// <summary>The backend's buffer (a T[] on the CPU). Several tensors may share it.</summary>
    public object Storage { get; }
    /// <summary>First element of this view inside <see cref="Storage"/>, in elements.</summary>
    public int Offset { get; }
    public string? Name { get; init; }

    public Tensor(IBackend backend, DType dtype, int[] shape, object storage, int offset = 0, string? name = null)
    {
        Backend = backend;
        DType = dtype;
        Shape = (int[])shape.Clone();
        Length = ElementCount(shape);
        Storage = storage;
        Offset = offset;
        Name = name;
    }

    public int Rank => Shape.Length;

    /// <summary>Size of dimension <paramref name="axis"/>; negative counts from the end.</summary>
    public int Dim(int axis) => Shape[axis < 0 ? Shape.Length + axis : axis];

    /// <summary>Product of all dimensions but the last: the number of rows of a [.., C] tensor (also when C = 0).</summary>
    public int Rows
    {
        get
        {
            int rows = 1;
            for (int i = 0; i < Shape.Length - 1; i++) rows *= Shape[i];  // ≤ Length unless C = 0; fits: ElementCount checked it
            return rows;
        }
    }

    /// <summary>A view of <paramref name="shape"/> starting <paramref name="offset"/> elements into this tensor.
    /// The bounds are checked in 64 bits: offset + count of two large ints would wrap around in 32.</summary>
    public Tensor Slice(int offset, int[] shape, string? name = null)
    {
        long n = ElementCount(shape);
        if (offset < 0 || offset + n > Length)
            throw new ArgumentException($"slice [{offset}, {offset + n}) of shape {ShapeString(shape)} does not fit in tensor {Describe()}");
        return new Tensor(Backend, DType, shape, Storage, checked(Offset + offset), name ?? Name);
    }

    /// <summary>The same elements under another shape with the same element count.</summary>
    public Tensor Reshape(params int[] shape)
    {
        if (ElementCount(shape) != Length)
            throw new ArgumentException($"cannot reshape {Describe()} to {ShapeString(shape)}: element counts differ");
        return new Tensor(Backend, DType, shape, Storage, Offset, Name);
    }

    public static int ElementCount(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape {ShapeString(shape.ToArray())}");
            n *= d;  // cannot wrap: stops growing past 2^31 below, and 2^31 · (2^31 − 1) < 2^63
            if (n > int.MaxValue)
                throw new ArgumentException($"shape {ShapeString(shape.ToArray())} has more than 2^31 − 1 elements: one tensor cannot hold it (a model's parameters are split into several arenas instead)");
        }
        return (int)n;
    }

    public static string ShapeString(int[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>"name [2, 3] F32" — used in every error message about a tensor.</summary>
    public string Describe() => $"{(Name is null ? "tensor" : Name)} {ShapeString(Shape)} {DType}";

    public override string ToString() => Describe();
}
