using Llm.Models;
using Llm.Tensors;

namespace Llm.Inference;

// Shapes: L decoder layers, B sequences, Tmax cached decoder positions, Te encoder positions, NH heads, hs head size.

/// <summary>
/// What an encoder-decoder's decoder keeps between generation steps: per layer, the self-attention keys and values of the
/// decoder tokens so far ([B, Tmax, NH, hs], written at [Length, Length + T) as <see cref="KvCache"/> does, the causal
/// mask at QueryOffset = Length hiding the rest), and the cross-attention keys and values of the encoder's output
/// ([B, Te, NH, hs]), computed at the first Decode and reused by every later step (the encoder output does not change).
/// A step's relative position bias is the bucket rows of its queries (offset Length) over all Tmax cached keys.
/// </summary>
public sealed class EncoderDecoderCache : IDisposable
{
    public int Batch { get; }
    public int Capacity { get; }
    /// <summary>Decoder positions written so far.</summary>
    public int Length { get; private set; }
    public IReadOnlyList<Tensor> Keys { get; }     // L × [B, Tmax, NH, hs]
    public IReadOnlyList<Tensor> Values { get; }   // L × [B, Tmax, NH, hs]
    /// <summary>L × [B, Te, NH, hs], null until the first Decode computed them.</summary>
    public IReadOnlyList<Tensor?> CrossKeys => _crossKeys;
    public IReadOnlyList<Tensor?> CrossValues => _crossValues;

    private readonly IBackend _backend;
    private readonly Tensor?[] _crossKeys, _crossValues;

    public EncoderDecoderCache(EncoderDecoder model, int batch, int capacity)
    {
        var c = model.Config;
        if (batch < 1) throw new ArgumentException($"a cache needs at least one sequence, got {batch}");
        if (capacity < 1 || capacity > c.ContextLength)
            throw new ArgumentException($"cache capacity {capacity} must lie in [1, context length {c.ContextLength}]");
        _backend = model.Backend;
        Batch = batch;
        Capacity = capacity;
        int[] shape = [batch, capacity, c.Heads, c.HeadSize];
        Keys = [.. Enumerable.Range(0, c.DecoderLayers).Select(l => _backend.Allocate(model.Parameters.DType, shape, $"cache.k.{l}"))];
        Values = [.. Enumerable.Range(0, c.DecoderLayers).Select(l => _backend.Allocate(model.Parameters.DType, shape, $"cache.v.{l}"))];
        _crossKeys = new Tensor?[c.DecoderLayers];
        _crossValues = new Tensor?[c.DecoderLayers];
    }

    public int Remaining => Capacity - Length;

    public bool HasCross(int layer) => _crossKeys[layer] is not null;

    /// <summary>Keeps a copy of layer l's cross-attention keys and values [B, Te, NH, hs].</summary>
    public void SetCross(int layer, Tensor key, Tensor value)
    {
        if (key.Dim(0) != Batch) throw new ArgumentException($"cross keys {key.Describe()} do not fit a cache of {Batch} sequences");
        if (_crossKeys[layer] is not null) throw new InvalidOperationException($"layer {layer}'s cross-attention keys are already cached");
        _crossKeys[layer] = _backend.Allocate(key.DType, key.Shape, $"cache.cross.k.{layer}");
        _crossValues[layer] = _backend.Allocate(value.DType, value.Shape, $"cache.cross.v.{layer}");
        _backend.Copy(key, _crossKeys[layer]!);
        _backend.Copy(value, _crossValues[layer]!);
    }

    /// <summary>Writes layer l's new self-attention keys and values [B, T, NH, hs] at positions [Length, Length + T).</summary>
    public void Write(int layer, Tensor key, Tensor value)
    {
        int t = key.Dim(1), width = key.Length / (Batch * Math.Max(t, 1));   // NH·hs per position
        if (key.Dim(0) != Batch || Length + t > Capacity)
            throw new ArgumentException($"keys {key.Describe()} do not fit the cache of {Batch} sequences ({Length} of {Capacity} positions used)");
        // rows are sequences: [B, T·NH·hs] into [B, Tmax·NH·hs] at column Length·NH·hs
        _backend.CopyColumns(key.Reshape(Batch, t * width), 0, Keys[layer].Reshape(Batch, Capacity * width), Length * width, t * width);
        _backend.CopyColumns(value.Reshape(Batch, t * width), 0, Values[layer].Reshape(Batch, Capacity * width), Length * width, t * width);
    }

    /// <summary>Marks <paramref name="count"/> more positions as written (after every layer has written them).</summary>
    public void Advance(int count) => Length += count;

    public void Dispose()
    {
        foreach (var t in Keys.Concat(Values)) _backend.Release(t);
        foreach (var t in _crossKeys.Concat(_crossValues)) if (t is not null) _backend.Release(t);
    }
}
