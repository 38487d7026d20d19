namespace Llm.Cpu;

/// <summary>
/// How the fast kernels use several cores without giving up bit-for-bit reproducibility: work is cut into a fixed list
/// of items (rows, heads, fixed-size chunks) that never depends on the thread count; each item is computed by one
/// thread, in a fixed order; reductions across items are done afterwards, sequentially, in item order.
/// </summary>
internal static class KernelParallel
{
    /// <summary>Below about this many elements touched, the thread pool's start-up costs more than it saves.</summary>
    public const long MinParallelWork = 1 << 18;

    /// <summary>Fixed chunk length of the flat elementwise kernels: 64 KiB of floats, a few per core's L2.</summary>
    public const int Chunk = 1 << 14;

    /// <summary>body(i) for i in [0, count): on the thread pool when <paramref name="work"/> is large, else inline.</summary>
    public static void For(int count, long work, Action<int> body)
    {
        if (count <= 1 || work < MinParallelWork)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, body);
    }

    /// <summary>Number of <see cref="Chunk"/>-long pieces covering <paramref name="length"/> elements.</summary>
    public static int Chunks(int length) => (length + Chunk - 1) / Chunk;

    /// <summary>One chunk of an elementwise kernel: x [chunk] → y [chunk].</summary>
    public delegate void ChunkMap(ReadOnlySpan<float> x, Span<float> y);
    /// <summary>One chunk of an elementwise backward: dy [chunk], x [chunk] → dx [chunk].</summary>
    public delegate void ChunkMap2(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, Span<float> dx);
    /// <summary>One chunk of a kernel that depends on the position: x [chunk] → y [chunk], start = the chunk's first index.</summary>
    public delegate void ChunkMapAt(ReadOnlySpan<float> x, Span<float> y, int start);

    /// <summary>body over the same fixed chunks of x and y, in parallel when <paramref name="workPerElement"/>·length is
    /// large: the elementwise fast paths' one loop (spans cannot be captured by the pool's lambdas, pointers can).</summary>
    public static void Elementwise(ReadOnlySpan<float> x, Span<float> y, long workPerElement, ChunkMap body) =>
        Elementwise(x, y, workPerElement, (xs, ys, _) => body(xs, ys));

    /// <summary>As <see cref="Elementwise(ReadOnlySpan{float}, Span{float}, long, ChunkMap)"/>, telling body where its chunk starts.</summary>
    public static unsafe void Elementwise(ReadOnlySpan<float> x, Span<float> y, long workPerElement, ChunkMapAt body)
    {
        fixed (float* px = x, py = y)
        {
            var xs = new Pinned<float>(px, x.Length);
            var ys = new Pinned<float>(py, y.Length);
            int length = x.Length;
            For(Chunks(length), workPerElement * length, k =>
            {
                int start = k * Chunk, count = Math.Min(Chunk, length - start);
                body(xs.Slice(start, count), ys.Slice(start, count), start);
            });
        }
    }

    /// <summary>As <see cref="Elementwise(ReadOnlySpan{float}, Span{float}, long, ChunkMap)"/> with two inputs.</summary>
    public static unsafe void Elementwise(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, Span<float> dx, long workPerElement, ChunkMap2 body)
    {
        fixed (float* pdy = dy, px = x, pdx = dx)
        {
            var dys = new Pinned<float>(pdy, dy.Length);
            var xs = new Pinned<float>(px, x.Length);
            var dxs = new Pinned<float>(pdx, dx.Length);
            int length = x.Length;
            For(Chunks(length), workPerElement * length, k =>
            {
                int start = k * Chunk, count = Math.Min(Chunk, length - start);
                body(dys.Slice(start, count), xs.Slice(start, count), dxs.Slice(start, count));
            });
        }
    }
}

/// <summary>The address and length of a span pinned by the caller's <c>fixed</c> statement, so that a Parallel.For
/// body (a lambda, which cannot capture a span) can slice it. Slices are bounds-checked like the span's own.</summary>
internal readonly unsafe struct Pinned<T>(T* start, int length) where T : unmanaged
{
    public Span<T> Slice(int offset, int count)
    {
        if ((uint)offset > (uint)length || (uint)count > (uint)(length - offset))
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + count}) of a span of {length}");
        return new Span<T>(start + offset, count);
    }

    public int Length => length;
}
