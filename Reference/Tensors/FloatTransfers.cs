namespace Llm.Tensors;

/// <summary>Host transfers for a float tensor of either training dtype: F32 for training, F64 for gradient checks.</summary>
public static class FloatTransfers
{
    /// <summary>destination = source, narrowed to float when the tensor is F64.</summary>
    public static void DownloadFloats(this IBackend backend, Tensor source, Span<float> destination)
    {
        if (source.DType != DType.F64) { backend.Download(source, destination); return; }
        var wide = new double[source.Length];
        backend.Download<double>(source, wide);
        for (int i = 0; i < wide.Length; i++) destination[i] = (float)wide[i];
    }

    /// <summary>destination = source, rounded to float when the tensor is F32.</summary>
    public static void UploadDoubles(this IBackend backend, ReadOnlySpan<double> source, Tensor destination)
    {
        if (destination.DType == DType.F64) { backend.Upload(source, destination); return; }
        var narrow = new float[source.Length];
        for (int i = 0; i < narrow.Length; i++) narrow[i] = (float)source[i];
        backend.Upload<float>(narrow, destination);
    }
}
