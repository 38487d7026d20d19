namespace Llm.Tensors;

/// <summary>Element type of a <see cref="Tensor"/>. F32 is the training type; F64 exists so the Reference can be
/// checked against finite differences in double precision; I32 holds token ids and targets.
/// F16, BF16, int8 and 4-bit blocks are named now so that checkpoints and later backends can carry them.</summary>
public enum DType
{
    F32,
    F64,
    I32,
    F16,
    BF16,
}

public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this DType dtype) => dtype switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F64 => 8,
        DType.F16 or DType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    public static bool IsFloat(this DType dtype) => dtype is DType.F32 or DType.F64 or DType.F16 or DType.BF16;
}
