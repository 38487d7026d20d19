using Llm.Tensors;

namespace Llm.Autograd;

/// <summary>A value on the tape and, once backward has reached it, its gradient (same shape).</summary>
/// <param name="requiresGrad">Whether backward computes its gradient, as PyTorch's requires_grad: a leaf says so (a
/// trainable parameter: yes; a frozen one or a constant: no), an op's output needs one when any of its inputs does.</param>
public sealed class Var(Tensor value, Tensor? grad = null, bool requiresGrad = false)
{
    public Tensor Value { get; } = value;
    /// <summary>Parameters bring their arena slice; activations get a pooled, zeroed tensor on first use; null when
    /// <see cref="RequiresGrad"/> is false.</summary>
    public Tensor? Grad { get; internal set; } = grad;
    public bool RequiresGrad { get; } = requiresGrad || grad is not null;
    public int[] Shape => Value.Shape;
    public override string ToString() => Value.Describe();
}

/// <summary>
/// Reverse-mode automatic differentiation above the backend. Each op runs the backend's forward kernel now and
/// records a closure that runs its backward kernel later; <see cref="Backward"/> replays them in reverse. An op
/// whose inputs need no gradient (frozen weights, constants, what is computed from them only) records nothing, and
/// a backward passes null for every input that needs none, so frozen weights cost no backward work.
/// Backward kernels accumulate, so a value used twice (the tied token embedding) simply receives both gradients.
/// Activations and their gradients come from a pool that <see cref="Reset"/> rewinds, so a training step allocates
/// nothing once the first step has run. The pool holds what the last step used and no more: whatever a step did not
/// take is given back to the backend at its Reset, so memory follows the current shapes (a sequence that grows by one
/// token per step, validation at another batch size) instead of keeping a set for every shape ever seen.
/// Dispose gives everything back.
/// </summary>
public sealed class Tape(IBackend backend, bool recording = true) : IDisposable
{
    public IBackend Backend { get; } = backend;
    /// <summary>false for inference: ops run, nothing is saved for backward.</summary>
    public bool Recording { get; set; } = recording;

    private readonly List<Action> _backward = [];
    /// <summary>The backward closures recorded since the last <see cref="Backward"/> or <see cref="Reset"/>.</summary>
    public int RecordedOps => _backward.Count;
    // Pooled allocations by (dtype, capacity); capacities are size classes, so nearby lengths share one.
    private readonly Dictionary<(DType, int), Stack<Tensor>> _free = [];
    private readonly List<Tensor> _inUse = [];
    private bool _disposed;

    /// <summary>Bytes of every allocation the pool holds, in use or free: what this tape costs the backend.</summary>
    public long PooledBytes { get; private set; }

    /// <summary>A pooled I32 tensor holding <paramref name="values"/>: a step's token ids, targets or positions.</summary>
    public Tensor Ids(ReadOnlySpan<int> values, int[] shape, string? name = null)
    {
        var t = Temp(DType.I32, shape, name);
        Backend.Upload(values, t);
        return t;
    }

    /// <summary>A pooled tensor whose contents are undefined until written (kernels overwrite their outputs).</summary>
    public Tensor Temp(DType dtype, int[] shape, string? name = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int n = Tensor.ElementCount(shape), capacity = Capacity(n);
        Tensor t;
        if (_free.TryGetValue((dtype, capacity), out var stack) && stack.Count > 0) t = stack.Pop();
        else
        {
            t = Backend.Allocate(dtype, [capacity], name);
            PooledBytes += (long)capacity * dtype.Size();
        }
        _inUse.Add(t);
        return t.Slice(0, shape, name);
    }

    /// <summary>Returns every activation to the pool and forgets the recorded ops. Call once per step. What stayed
    /// free through the whole step is released first: the next step is likely to look like this one.</summary>
    public void Reset()
    {
        ReleaseFree();
        foreach (var t in _inUse)
        {
            var key = (t.DType, t.Length);
            if (!_free.TryGetValue(key, out var stack)) _free[key] = stack = new Stack<Tensor>();
            stack.Push(t);
        }
        _inUse.Clear();
        _backward.Clear();
    }

    /// <summary>Gives every pooled tensor back to the backend; the tape cannot be used afterwards.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        Reset();
        ReleaseFree();
        _disposed = true;
    }

    private void ReleaseFree()
    {
        foreach (var stack in _free.Values)
            foreach (var t in stack)
            {
                Backend.Release(t);
                PooledBytes -= (long)t.Length * t.DType.Size();
            }
        _free.Clear();
    }

    /// <summary>The size class of n elements: n rounded up to m·2^k with 8 ≤ m &lt; 16, so at most 1/8 is unused
    /// and a length that grows by one reuses its allocation until it crosses the next class.</summary>
    public static int Capacity(int n)
    {
        if (n <= 16) return Math.Max(n, 1);
        int shift = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)n) - 3;  // keep the top 4 bits
        long rounded = ((long)((n + (1L << shift) - 1) >> shift)) << shift;
        return (int)Math.Min(rounded, int.MaxValue);
    }

    /// <summary>An op's output, which needs a gradient when recording and any input needs one.</summary>
    private Var NewVar(DType dtype, int[] shape, string name, params ReadOnlySpan<Var?> inputs)
    {
        bool requires = false;
        foreach (var v in inputs) requires |= v?.RequiresGrad ?? false;
        return new(Temp(dtype, shape, name), requiresGrad: Recording && requires);
    }

    /// <summary>The gradient of <paramref name="v"/>, created and zeroed on first use; null when it needs none.</summary>
    private Tensor? GradOf(Var? v)
    {
        if (v is null || !v.RequiresGrad) return null;
        if (v.Grad is null)
        {
            v.Grad = Temp(v.Value.DType, v.Shape, "d" + v.Value.Name);
            Backend.Fill(v.Grad, 0); // the visible zeroing step: backward kernels only accumulate
        }
        return v.Grad;
    }

    /// <summary>The gradient of an input a kernel must write even when it needs none (the norms' and attention's
    /// dInput): a throwaway buffer then. Happens only where a trainable op follows frozen ones.</summary>
    private Tensor GradOrScratch(Var v) => GradOf(v) ?? Temp(v.Value.DType, v.Shape, "unused d" + v.Value.Name);

    /// <summary>Records <paramref name="backward"/> when <paramref name="output"/> needs a gradient (so some input does).</summary>
    private void Record(Var output, Action backward)
    {
        if (Recording && output.RequiresGrad) _backward.Add(backward);
    }

    /// <summary>Seeds d(loss)/d(losses) = <paramref name="dLosses"/> and runs every recorded backward in reverse.</summary>
    public void Backward(Var losses, Tensor dLosses) => Backward([(losses, dLosses)]);

    /// <summary>Seeds several terms of one loss (cross-entropy plus auxiliary losses), each value with its gradient,
    /// then runs every recorded backward once, in reverse.</summary>
    public void Backward(IReadOnlyList<(Var Value, Tensor Gradient)> seeds)
    {
        foreach (var (value, gradient) in seeds)
        {
            if (!value.RequiresGrad)
                throw new InvalidOperationException($"backward of {value.Value.Describe()}, which needs no gradient: nothing it depends on is trainable (or the tape was not recording)");
            Backend.Accumulate(gradient, GradOf(value)!);
        }
        for (int i = _backward.Count - 1; i >= 0; i--) _backward[i]();
        _backward.Clear();
    }

    // ---- ops -------------------------------------------------------------------------------------------------------

    /// <summary>out[n] = table[ids[n]]. ids [..] I32 → out [.., C].</summary>
    public Var Embedding(Var table, Tensor ids)
    {
        var output = NewVar(table.Value.DType, [.. ids.Shape, table.Shape[1]], "embedding", table);
        Backend.Embedding(ids.Reshape(ids.Length), table.Value, output.Value.Reshape(ids.Length, table.Shape[1]));
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.EmbeddingBackward(output.Grad.Reshape(ids.Length, table.Shape[1]), ids.Reshape(ids.Length), GradOf(table)!);
        });
        return output;
    }

    /// <summary>out = op(a) · op(b) (+ bias); see <see cref="IBackend.MatMul"/> for the shapes.</summary>
    public Var MatMul(Var a, Var b, Var? bias = null, bool transA = false, bool transB = false)
    {
        int m = transA ? a.Shape[^1] : a.Shape[^2];
        int n = transB ? b.Shape[^2] : b.Shape[^1];
        int[] batch = a.Shape.Length >= b.Shape.Length ? a.Shape[..^2] : b.Shape[..^2];
        var output = NewVar(a.Value.DType, [.. batch, m, n], "matmul", a, b, bias);
        Backend.MatMul(a.Value, b.Value, bias?.Value, output.Value, transA, transB);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.MatMulBackward(output.Grad, a.Value, b.Value, GradOf(a), GradOf(b), GradOf(bias), transA, transB);
        });
        return output;
    }

    /// <summary>A Conv1D/nn.Linear layer on the last axis: x [.., K] · weight [K, N] + bias [N] → [.., N].
    /// The weight is rank 2, so the backend treats x's leading axes as one batch of rows.</summary>
    public Var Linear(Var x, Var weight, Var? bias)
    {
        if (weight.Shape.Length != 2 || weight.Shape[0] != x.Shape[^1])
            throw new ArgumentException($"linear: input {x.Value.Describe()} does not match weight {weight.Value.Describe()} ([in, out])");
        return MatMul(x, weight, bias);
    }

    /// <summary>LayerNorm over the last axis with learned gain and bias.</summary>
    public Var LayerNorm(Var x, Var weight, Var bias, float eps = 1e-5f)
    {
        int c = x.Shape[^1], rows = x.Value.Rows;
        var output = NewVar(x.Value.DType, x.Shape, "layernorm", x, weight, bias);
        Tensor mean = Temp(x.Value.DType, [rows], "mean");  // [N] saved for backward
        Tensor rstd = Temp(x.Value.DType, [rows], "rstd");  // [N] saved for backward
        Backend.LayerNorm(x.Value.Reshape(rows, c), weight.Value, bias.Value, output.Value.Reshape(rows, c), mean, rstd, eps);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.LayerNormBackward(output.Grad.Reshape(rows, c), x.Value.Reshape(rows, c), weight.Value, mean, rstd,
                GradOrScratch(x).Reshape(rows, c), GradOf(weight), GradOf(bias));
        });
        return output;
    }

    /// <summary>RMSNorm over the last axis with a learned gain (LLaMA's; no mean subtracted, no bias).</summary>
    public Var RmsNorm(Var x, Var weight, float eps = 1e-6f)
    {
        int c = x.Shape[^1], rows = x.Value.Rows;
        var output = NewVar(x.Value.DType, x.Shape, "rmsnorm", x, weight);
        Tensor rstd = Temp(x.Value.DType, [rows], "rstd");  // [N] saved for backward
        Backend.RmsNorm(x.Value.Reshape(rows, c), weight.Value, output.Value.Reshape(rows, c), rstd, eps);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.RmsNormBackward(output.Grad.Reshape(rows, c), x.Value.Reshape(rows, c), weight.Value, rstd,
                GradOrScratch(x).Reshape(rows, c), GradOf(weight));
        });
        return output;
    }

    public Var Gelu(Var x) => Unary(x, "gelu", Backend.Gelu, (dy, dx) => Backend.GeluBackward(dy, x.Value, dx));

    /// <summary>x·σ(βx); SiLU at β = 1.</summary>
    public Var Swish(Var x, float beta = 1f) =>
        Unary(x, "swish", (v, y) => Backend.Swish(v, y, beta), (dy, dx) => Backend.SwishBackward(dy, x.Value, dx, beta));

    /// <summary>σ(x): GLU's gate.</summary>
    public Var Sigmoid(Var x) => Unary(x, "sigmoid", Backend.Sigmoid, (dy, dx) => Backend.SigmoidBackward(dy, x.Value, dx));

    /// <summary>α·x as a new value (DeepNorm's scaled residual); its backward adds α·dy.</summary>
    public Var ScaleBy(Var x, float alpha)
    {
        var output = NewVar(x.Value.DType, x.Shape, "scaled", x);
        Backend.Copy(x.Value, output.Value);
        Backend.Scale(output.Value, alpha);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            var scaled = Temp(x.Value.DType, x.Shape, "dscaled");
            Backend.Copy(output.Grad, scaled);
            Backend.Scale(scaled, alpha);
            Backend.Accumulate(scaled, GradOf(x)!);
        });
        return output;
    }

    /// <summary>max(0, x).</summary>
    public Var Relu(Var x) => Unary(x, "relu", Backend.Relu, (dy, dx) => Backend.ReluBackward(dy, x.Value, dx));

    /// <summary>Exact GeLU x·Φ(x) (PyTorch's default; <see cref="Gelu"/> is GPT-2's tanh approximation).</summary>
    public Var GeluExact(Var x) =>
        Unary(x, "gelu_exact", Backend.GeluExact, (dy, dx) => Backend.GeluExactBackward(dy, x.Value, dx));

    /// <summary>The elementwise product a ⊙ b (the gate of GLU, SwiGLU, GEGLU).</summary>
    public Var Multiply(Var a, Var b)
    {
        var output = NewVar(a.Value.DType, a.Shape, "multiply", a, b);
        Backend.Multiply(a.Value, b.Value, output.Value);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.MultiplyBackward(output.Grad, a.Value, b.Value, GradOf(a), GradOf(b));
        });
        return output;
    }

    /// <summary>Inverted dropout of x with drop probability p on the stream (seed, offset); its backward recomputes the mask.</summary>
    public Var Dropout(Var x, float p, ulong seed, long offset) =>
        Unary(x, "dropout", (v, y) => Backend.Dropout(v, y, p, seed, offset), (dy, dx) => Backend.DropoutBackward(dy, dx, p, seed, offset));

    /// <summary>Rotary position embedding of q or k [B, T, H, hs] at positions [B, T] I32 (not differentiated).</summary>
    public Var Rope(Var x, Tensor positions, int rotaryDims, float theta = 10000f) =>
        Unary(x, "rope", (v, y) => Backend.Rope(v, positions, y, rotaryDims, theta),
            (dy, dx) => Backend.RopeBackward(dy, positions, dx, rotaryDims, theta));

    /// <summary>y = f(x) of x's shape: <paramref name="forward"/>(x, y) now; on the way back, once y has a gradient,
    /// <paramref name="backward"/>(dy, dx) accumulates into x's.</summary>
    private Var Unary(Var x, string name, Action<Tensor, Tensor> forward, Action<Tensor, Tensor> backward)
    {
        var output = NewVar(x.Value.DType, x.Shape, name, x);
        forward(x.Value, output.Value);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            backward(output.Grad, GradOf(x)!);
        });
        return output;
    }

    /// <summary>The residual connection a + b.</summary>
    public Var Add(Var a, Var b)
    {
        var output = NewVar(a.Value.DType, a.Shape, "residual", a, b);
        Backend.Add(a.Value, b.Value, output.Value);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            if (GradOf(a) is { } da) Backend.Accumulate(output.Grad, da);
            if (GradOf(b) is { } db) Backend.Accumulate(output.Grad, db);
        });
        return output;
    }

    /// <summary>The same elements under another shape; its gradient is a view of x's, so nothing is copied either way.</summary>
    public Var Reshape(Var x, params int[] shape) =>
        new(x.Value.Reshape(shape), Recording ? GradOf(x)?.Reshape(shape) : null);

    /// <summary>Columns [start, start + width) of x [.., C] → [.., width]: q, k or v out of a fused projection.</summary>
    public Var Columns(Var x, int start, int width)
    {
        var output = NewVar(x.Value.DType, [.. x.Shape[..^1], width], "columns", x);
        Backend.CopyColumns(x.Value, start, output.Value, 0, width);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.CopyColumns(output.Grad, 0, GradOf(x)!, start, width, accumulate: true);
        });
        return output;
    }

    /// <summary>Attention of query [B, Tq, NH, hs] over key, value [B, Tk, NKV, hs] under <paramref name="mask"/>, with an
    /// optional learned score bias [NH, Tq, Tk] → [B, Tq, NH, hs]. Saves rowMax and rowSum [B, NH, Tq], no T×T tensor.</summary>
    public Var Attention(Var query, Var key, Var value, AttentionMask mask, Var? scoreBias = null)
    {
        int b = query.Shape[0], t = query.Shape[1], heads = query.Shape[2];
        var output = NewVar(query.Value.DType, query.Shape, "attention", query, key, value, scoreBias);
        Tensor rowMax = Temp(query.Value.DType, [b, heads, t], "rowMax");   // [B, NH, Tq] saved for backward
        Tensor rowSum = Temp(query.Value.DType, [b, heads, t], "rowSum");   // [B, NH, Tq]
        Backend.Attention(query.Value, key.Value, value.Value, scoreBias?.Value, mask, output.Value, rowMax, rowSum);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.AttentionBackward(output.Grad, query.Value, key.Value, value.Value, scoreBias?.Value, mask, output.Value, rowMax, rowSum,
                GradOrScratch(query), GradOrScratch(key), GradOrScratch(value), GradOf(scoreBias));
        });
        return output;
    }

    /// <summary>Per-row cross-entropy of logits [.., V] against targets [..] I32 → losses [N] (0 where ignored).</summary>
    public Var CrossEntropy(Var logits, Tensor targets, int ignoreIndex = -1)
    {
        int v = logits.Shape[^1], rows = logits.Value.Rows;
        if (targets.Length != rows)
            throw new ArgumentException($"cross-entropy: {targets.Describe()} has {targets.Length} targets for {rows} rows of {logits.Value.Describe()}");
        var losses = NewVar(logits.Value.DType, [rows], "losses", logits);
        Tensor probs = Temp(logits.Value.DType, [rows, v], "probs");  // [N, V] softmax, saved for backward
        Backend.CrossEntropy(logits.Value.Reshape(rows, v), targets.Reshape(rows), probs, losses.Value, ignoreIndex);
        Record(losses, () =>
        {
            if (losses.Grad is null) return;
            Backend.CrossEntropyBackward(losses.Grad, probs, targets.Reshape(rows), GradOf(logits)!.Reshape(rows, v), ignoreIndex);
        });
        return losses;
    }

    /// <summary>T5's relative position bias: table [NB, NH] read at buckets [Tq, Tk] I32 → [NH, Tq, Tk], attention's score
    /// bias; its backward sums each bucket's positions into the table's gradient.</summary>
    public Var RelativePositionBias(Var table, Tensor buckets)
    {
        if (buckets.Rank != 2 || table.Shape.Length != 2)
            throw new ArgumentException($"relative position bias: table {table.Value.Describe()} must be [NB, NH] and buckets {buckets.Describe()} [Tq, Tk]");
        var output = NewVar(table.Value.DType, [table.Shape[1], buckets.Shape[0], buckets.Shape[1]], "relative bias", table);
        Backend.RelativePositionBias(table.Value, buckets, output.Value);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.RelativePositionBiasBackward(output.Grad, buckets, GradOf(table)!);
        });
        return output;
    }

    // ---- mixture of experts ----------------------------------------------------------------------------------------

    /// <summary>The router's softmax over the last axis of logits [N, E]: probs [N, E] and logSumExp [N] (the z-loss's input).</summary>
    public (Var Probs, Var LogSumExp) Softmax(Var logits)
    {
        int rows = logits.Value.Rows;
        var probs = NewVar(logits.Value.DType, logits.Shape, "probs", logits);
        var lse = NewVar(logits.Value.DType, [rows], "logsumexp", logits);
        Backend.Softmax(logits.Value, probs.Value, lse.Value);
        Record(probs, () =>   // after every consumer of either output: the closure sees both gradients
        {
            if (probs.Grad is null && lse.Grad is null) return;
            Backend.SoftmaxBackward(probs.Grad, lse.Grad, probs.Value, GradOf(logits)!);
        });
        return (probs, lse);
    }

    /// <summary>Top-k routing of probs [N, E] with a capacity (see <see cref="IBackend.MoeRoute"/>): the experts, slots and
    /// load are integer/constant routing decisions; the gates [N, k] carry the gradient back to probs.</summary>
    public MoeRouting MoeRoute(Var probs, int k, int capacity, bool normalize)
    {
        int n = probs.Shape[0], e = probs.Shape[1];
        var experts = Temp(DType.I32, [n, k], "experts");   // [N, k]
        var slots = Temp(DType.I32, [n, k], "slots");       // [N, k]
        var load = Temp(probs.Value.DType, [e], "load");    // [E], constant: Switch's f_e carries no gradient
        var gates = NewVar(probs.Value.DType, [n, k], "gates", probs);
        Backend.MoeRoute(probs.Value, capacity, normalize, experts, slots, gates.Value, load);
        Record(gates, () =>
        {
            if (gates.Grad is null) return;
            Backend.MoeRouteBackward(gates.Grad, probs.Value, experts, normalize, GradOf(probs)!);
        });
        return new MoeRouting(experts, slots, gates, load);
    }

    /// <summary>Gathers each kept choice's row of x [N, C] into its slot of [expertRows, C] (other rows 0).</summary>
    public Var MoeDispatch(Var x, Tensor slots, int expertRows)
    {
        int c = x.Shape[^1];
        var output = NewVar(x.Value.DType, [expertRows, c], "dispatched", x);
        Backend.MoeDispatch(x.Value, slots, output.Value);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.MoeDispatchBackward(output.Grad, slots, GradOf(x)!);
        });
        return output;
    }

    /// <summary>output [N, C] = Σ_j gates[n, j]·expertOutput[slots[n, j]] over kept choices; expertOutput [R, C].</summary>
    public Var MoeCombine(Var expertOutput, Tensor slots, Var gates)
    {
        int n = slots.Shape[0], c = expertOutput.Shape[^1];
        var output = NewVar(expertOutput.Value.DType, [n, c], "combined", expertOutput, gates);
        Backend.MoeCombine(expertOutput.Value, slots, gates.Value, output.Value);
        Record(output, () =>
        {
            if (output.Grad is null) return;
            Backend.MoeCombineBackward(output.Grad, expertOutput.Value, slots, gates.Value, GradOf(expertOutput), GradOf(gates));
        });
        return output;
    }
}

/// <summary>One MoE layer's routing: experts and slots [N, k] I32, gates [N, k] (differentiable), load [E] (the fraction of
/// tokens whose first choice is each expert, a constant).</summary>
public sealed record MoeRouting(Tensor Experts, Tensor Slots, Var Gates, Tensor Load);
