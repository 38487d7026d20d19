using Llm.Models;
using Llm.Tensors;

namespace Llm.Inference;

// Shapes: L layers, B sequences, Tmax cached positions, NKV key/value heads, hs head size.

/// <summary>
/// The keys and values of every layer for the tokens seen so far, so that each new token attends to them instead of
/// recomputing the whole prefix: O(T) work per token instead of O(T²). Layer l's keys are [B, Tmax, NKV, hs] (after
/// RoPE); a forward of T new tokens writes positions [Length, Length + T) and attends over the cache with its queries at
/// QueryOffset = Length, so the causal mask hides the positions not written yet. Key segment ids (padding of batched
/// prompts) live here too, on the host, and are uploaded when they change.
/// </summary>
public sealed class KvCache : IDisposable
{
    public int Batch { get; }
    public int Capacity { get; }
    /// <summary>Positions written so far (the same for every sequence: shorter prompts are left-padded).</summary>
    public int Length { get; private set; }
    public IReadOnlyList<Tensor> Keys { get; }     // L × [B, Tmax, NKV, hs]
    public IReadOnlyList<Tensor> Values { get; }   // L × [B, Tmax, NKV, hs]

    private readonly IBackend _backend;
    private readonly int[]? _segments;             // [B, Tmax] host copy of the key segments, or null when none are used
    private Tensor? _segmentTensor;                // [B, Tmax] I32
    private bool _segmentsDirty;

    public KvCache(Decoder model, int batch, int capacity, bool segments = false)
    {
        var c = model.Config;
        if (batch < 1) throw new ArgumentException($"a KV cache needs at least one sequence, got {batch}");
        if (capacity < 1 || capacity > c.ContextLength)
            throw new ArgumentException($"KV cache capacity {capacity} must lie in [1, context length {c.ContextLength}]");
        _backend = model.Backend;
        Batch = batch;
        Capacity = capacity;
        int[] shape = [batch, capacity, c.KeyValueHeads, c.HeadSize];
        Keys = [.. Enumerable.Range(0, c.Layers).Select(l => _backend.Allocate(model.Parameters.DType, shape, $"cache.k.{l}"))];
        Values = [.. Enumerable.Range(0, c.Layers).Select(l => _backend.Allocate(model.Parameters.DType, shape, $"cache.v.{l}"))];
        if (segments) _segments = new int[batch * capacity];
    }

    public int Remaining => Capacity - Length;

    /// <summary>The key segments [B, Tmax] I32 for the mask, or null when the cache keeps none.</summary>
    public Tensor? KeySegments
    {
        get
        {
            if (_segments is null) return null;
            _segmentTensor ??= _backend.Allocate(DType.I32, [Batch, Capacity], "cache segments");
            if (_segmentsDirty) _backend.Upload<int>(_segments, _segmentTensor);
            _segmentsDirty = false;
            return _segmentTensor;
        }
    }

    /// <summary>Records the segments of the next <paramref name="count"/> positions of sequence b (before the forward that writes them).</summary>
    public void SetSegments(int b, ReadOnlySpan<int> segments)
    {
        if (_segments is null) throw new InvalidOperationException("this KV cache was made without segments");
        if (Length + segments.Length > Capacity)
            throw new ArgumentException($"{segments.Length} new positions do not fit the KV cache ({Length} of {Capacity} used)");
        segments.CopyTo(_segments.AsSpan(b * Capacity + Length, segments.Length));
        _segmentsDirty = true;
    }

    /// <summary>Writes layer l's new keys and values [B, T, NKV, hs] at positions [Length, Length + T).</summary>
    public void Write(int layer, Tensor key, Tensor value)
    {
        int t = key.Dim(1), width = key.Length / (Batch * Math.Max(t, 1));   // NKV·hs per position
        if (key.Dim(0) != Batch || Length + t > Capacity)
            throw new ArgumentException($"keys {key.Describe()} do not fit the KV cache of {Batch} sequences ({Length} of {Capacity} positions used)");
        // rows are sequences: [B, T·NKV·hs] into [B, Tmax·NKV·hs] at column Length·NKV·hs
        _backend.CopyColumns(key.Reshape(Batch, t * width), 0, Keys[layer].Reshape(Batch, Capacity * width), Length * width, t * width);
        _backend.CopyColumns(value.Reshape(Batch, t * width), 0, Values[layer].Reshape(Batch, Capacity * width), Length * width, t * width);
    }

    /// <summary>Marks <paramref name="count"/> more positions as written (after every layer has written them).</summary>
    public void Advance(int count) => Length += count;

    /// <summary>Forgets every position, keeping the memory.</summary>
    public void Clear()
    {
        Length = 0;
        if (_segments is not null) { Array.Clear(_segments); _segmentsDirty = true; }
    }

    public void Dispose()
    {
        foreach (var t in Keys.Concat(Values)) _backend.Release(t);
        if (_segmentTensor is not null) _backend.Release(_segmentTensor);
    }
}
