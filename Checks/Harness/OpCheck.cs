using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks;

/// <summary>What an op does with a buffer, which decides how it is prepared and checked.</summary>
public enum Role
{
    /// <summary>Read only: guards are NaN (an out-of-bounds read poisons the result); contents must not change.</summary>
    Input,
    /// <summary>Written: pre-filled with NaN so every element must be written; compared with the oracle.</summary>
    Output,
    /// <summary>Read and written (gradients that accumulate, in-place updates): pre-filled with the given values; compared.</summary>
    InOut,
}

/// <summary>One logical tensor of an op under test, materialized on the oracle and on every subject.</summary>
public sealed class Buf
{
    internal Buf(string name, int[] shape, DType kind, Role role, Tolerance tolerance, double[]? floats, int[]? ints)
    {
        Name = name; Shape = shape; Kind = kind; Role = role; Tolerance = tolerance; Floats = floats; Ints = ints;
    }

    public string Name { get; }
    public int[] Shape { get; }
    /// <summary>F32 for float data (F64 on the oracle), I32 for ids and targets.</summary>
    public DType Kind { get; }
    public Role Role { get; }
    public Tolerance Tolerance { get; }
    /// <summary>The size its elements would have if nothing cancelled (e.g. √K·RMS(a)·RMS(b) for a dot product of
    /// length K): the per-element bound measures small elements against max(RMS(oracle), Scale), so that a buffer
    /// whose every element is a near-cancelling sum (one output of a long sum) is not held to a relative bound.</summary>
    public double Scale { get; init; }
    /// <summary>Initial float contents (NaN for outputs); null for I32 buffers.</summary>
    public double[]? Floats { get; }
    public int[]? Ints { get; }
    public int Length => Tensor.ElementCount(Shape);
    internal readonly List<Guarded> Sides = [];
    public override string ToString() => $"{Name}{Dims.Shape(Shape)}";
}

/// <summary>
/// A view in the middle of a larger allocation. Before the op the guard elements on both sides hold a marker;
/// afterwards they must still hold it (an out-of-bounds write changes them, an out-of-bounds read of an input's
/// NaN guard poisons the result). Views also exercise the Tensor.Offset path of every kernel.
/// </summary>
internal sealed class Guarded
{
    public const float OutputGuard = -31337.25f;  // finite, so accumulating into it (x += g) is visible
    public const int IdGuard = -1234567;          // an id no kernel may use
    public const int IdPoison = -7654321;         // an I32 output's contents before the op writes it

    public required IBackend Backend { get; init; }
    public required Tensor Whole { get; init; }
    public required Tensor View { get; init; }
    public required int Before { get; init; }
    public required int After { get; init; }
}

/// <summary>
/// Runs one op on the oracle (scalar definition, F64) and on every subject backend (F32) with identical inputs,
/// then checks: guards untouched, inputs unchanged, outputs fully written and finite, every output within its
/// <see cref="Tolerance"/> of the oracle, and of every in-out buffer the increment (after − before), so that a
/// wrong small update to a large pre-filled gradient is not hidden by the pre-fill.
/// <code>
/// var check = new OpCheck("Gelu", c, c.Seed, context);
/// var x = check.Input("input", [n], Values.Normal(check.Rng, n));
/// var y = check.Output("output", [n], Tolerance.Elementwise);
/// check.Run((b, t) => b.Gelu(t(x), t(y)));
/// </code>
/// </summary>
public sealed class OpCheck
{
    private readonly string _op;
    private readonly object _case;
    private readonly List<Buf> _bufs = [];
    private readonly List<(IBackend Backend, DType Float, string Name)> _sides;
    private readonly Rng _guardRng;

    private readonly CheckContext _context;

    /// <param name="context">the backends under test, and where the worst errors seen are recorded.</param>
    public OpCheck(string op, object testCase, int seed, CheckContext context)
    {
        _op = op;
        _case = testCase;
        _context = context;
        Rng = new Rng((ulong)seed);
        _guardRng = new Rng((ulong)seed ^ 0x5DEECE66DUL);
        _sides = [(Oracle.Backend, DType.F64, "oracle")];
        foreach (var s in context.Subjects) _sides.Add((s.Backend, s.DType, s.Name));
    }

    /// <summary>The case's data generator: draw every input from it, in a fixed order, so a seed replays.</summary>
    public Rng Rng { get; }

    public Buf Input(string name, int[] shape, double[] values) => Add(new(name, shape, DType.F32, Role.Input, default, values, null));
    public Buf Ids(string name, int[] shape, int[] values) => Add(new(name, shape, DType.I32, Role.Input, default, null, values));
    public Buf Output(string name, int[] shape, Tolerance tolerance, double scale = 0)
    {
        var nan = new double[Tensor.ElementCount(shape)];
        Array.Fill(nan, double.NaN);
        return Add(new(name, shape, DType.F32, Role.Output, tolerance, nan, null) { Scale = scale });
    }
    /// <summary>An I32 output (routing decisions): pre-filled with a poison id, so every element must be written; it must
    /// equal the oracle's exactly.</summary>
    public Buf IdsOutput(string name, int[] shape)
    {
        var poison = new int[Tensor.ElementCount(shape)];
        Array.Fill(poison, Guarded.IdPoison);
        return Add(new(name, shape, DType.I32, Role.Output, Tolerance.Exact, null, poison));
    }

    /// <summary>A buffer the op reads and updates: an accumulating gradient (pre-fill nonzero) or in-place state.</summary>
    public Buf InOut(string name, int[] shape, double[] initial, Tolerance tolerance, double scale = 0) =>
        Add(new(name, shape, DType.F32, Role.InOut, tolerance, initial, null) { Scale = scale });

    private Buf Add(Buf buf)
    {
        if (buf.Floats is { } f && f.Length != buf.Length || buf.Ints is { } i && i.Length != buf.Length)
            throw new ArgumentException($"{_op}: initial data for {buf} has the wrong length");
        foreach (var (backend, floatType, _) in _sides)
        {
            int before = 1 + _guardRng.NextInt(13), after = 1 + _guardRng.NextInt(13); // odd offsets: no alignment luck
            DType dtype = buf.Kind == DType.I32 ? DType.I32 : floatType;
            var whole = backend.Allocate(dtype, [before + buf.Length + after], buf.Name + "+guards");
            if (dtype == DType.I32)
            {
                var all = new int[whole.Length];
                Array.Fill(all, Guarded.IdGuard);
                buf.Ints!.CopyTo(all, before);
                backend.Upload<int>(all, whole);
            }
            else
            {
                var all = new double[whole.Length];
                Array.Fill(all, buf.Role == Role.Input ? double.NaN : Guarded.OutputGuard);
                buf.Floats!.CopyTo(all, before);
                UploadFloats(backend, whole, all);
            }
            buf.Sides.Add(new Guarded { Backend = backend, Whole = whole, View = whole.Slice(before, buf.Shape, buf.Name), Before = before, After = after });
        }
        _bufs.Add(buf);
        return buf;
    }

    /// <summary>Runs <paramref name="op"/> on every side (t maps a Buf to that side's tensor) and checks everything.</summary>
    public void Run(Action<IBackend, Func<Buf, Tensor>> op) => Run((b, t) => { op(b, t); return 0.0; }, null);

    /// <summary>As <see cref="Run(Action{IBackend, Func{Buf, Tensor}})"/> for an op that returns a number, compared
    /// like a one-element output named <paramref name="result"/>.</summary>
    public void Run(Func<IBackend, Func<Buf, Tensor>, double> op, (string Name, Tolerance Tolerance)? result)
    {
        var returned = new double[_sides.Count];
        for (int s = 0; s < _sides.Count; s++)
        {
            int side = s;
            try
            {
                returned[s] = op(_sides[s].Backend, b => b.Sides[side].View);
                _sides[s].Backend.Synchronize();
                // the Khronos validation layer is on for the whole suite: anything it says fails the op that caused it
                if (_sides[s].Backend is Llm.Vulkan.VulkanBackend vk && vk.TakeValidationMessages() is { Count: > 0 } messages)
                    throw new OpCheckException($"{_op} on {_sides[s].Name}: the Vulkan validation layer reported:\n  {string.Join("\n  ", messages)}\n  case: {_case}");
            }
            catch (Exception e) when (e is not OpCheckException)
            {
                throw new OpCheckException($"{_op} threw on {_sides[s].Name}: {e.GetType().Name}: {e.Message}\n  case: {_case}", e);
            }
        }
        for (int s = 0; s < _sides.Count; s++) CheckGuardsAndInputs(s);

        // what each subject is held to, computed once: an output's values, or an in-out buffer's increment and the f32
        // roundings at the size of the result that no subject avoids
        var expected = new Dictionary<Buf, (double[] Values, double[]? Slack)>();
        foreach (var buf in _bufs.Where(b => b.Role != Role.Input && b.Kind == DType.I32))
        {
            int[] Ints(int side) { var v = new int[buf.Length]; buf.Sides[side].Backend.Download<int>(buf.Sides[side].View, v); return v; }
            var oracle = Ints(0);
            if (Array.IndexOf(oracle, Guarded.IdPoison) is int unwritten and >= 0)
                throw new OpCheckException($"{_op} oracle: element {unwritten} of {buf} was not written\n  case: {_case}");
            for (int s = 1; s < _sides.Count; s++)
            {
                var actual = Ints(s);
                for (int i = 0; i < actual.Length; i++)
                    if (actual[i] != oracle[i])
                        throw new OpCheckException($"{_op} on {_sides[s].Name}: {buf}[{i}] = {actual[i]}, the oracle's is {oracle[i]} (integer outputs must agree exactly)\n  case: {_case}");
            }
        }
        foreach (var buf in _bufs.Where(b => b.Role != Role.Input && b.Kind != DType.I32))
        {
            var after = OracleValues(buf);
            Compare.RequireFinite($"{_op} oracle", buf.Name, after, _case);
            expected[buf] = buf.Role == Role.Output ? (after, null)
                : (Increment(after, buf.Floats!), [.. after.Select(v => ResultRoundings * Compare.F32Rounding * Math.Abs(v))]);
        }
        for (int s = 1; s < _sides.Count; s++)
        {
            foreach (var (buf, (values, slack)) in expected)
            {
                var actual = SubjectValues(buf, s);
                if (buf.Role == Role.Output)
                    Compare.Check(_context, _op, _sides[s].Name, buf.Name, buf.Shape, actual, values, buf.Tolerance, _case, scale: buf.Scale);
                else
                    Compare.Check(_context, _op, _sides[s].Name, buf.Name + " increment", buf.Shape, Increment(actual, buf.Floats!),
                        values, buf.Tolerance, _case, slack, buf.Scale);
            }
            if (result is { } r)
                Compare.Check(_context, _op, _sides[s].Name, r.Name, [], [returned[s]], [returned[0]], r.Tolerance, _case);
        }
    }

    /// <summary>An update after = before + δ in f32 rounds at the size of |after| a few times (AdamW's β₂·v, the
    /// sum, the store), each by ≤ 2⁻²⁴·|after|, an error that can dwarf a small δ: four such are allowed.</summary>
    public const double ResultRoundings = 4;

    /// <summary>after − before, elementwise: what an op added to a pre-filled buffer.</summary>
    public static double[] Increment(double[] after, double[] before) => [.. after.Select((a, i) => a - before[i])];

    /// <summary>The oracle's contents of a float buffer after <see cref="Run"/>.</summary>
    public double[] OracleValues(Buf buf) => Download(buf.Sides[0].Backend, buf.Sides[0].View);

    /// <summary>Subject number <paramref name="subject"/> (1-based, as in the side list)'s contents of a float buffer, widened.</summary>
    public double[] SubjectValues(Buf buf, int subject) => Download(buf.Sides[subject].Backend, buf.Sides[subject].View);

    public int SubjectCount => _sides.Count - 1;
    public string SideName(int side) => _sides[side].Name;
    public object Case => _case;

    private void CheckGuardsAndInputs(int s)
    {
        string who = $"{_op} on {_sides[s].Name}";
        foreach (var buf in _bufs)
        {
            var g = buf.Sides[s];
            if (buf.Kind == DType.I32)
            {
                var all = new int[g.Whole.Length];
                g.Backend.Download<int>(g.Whole, all);
                for (int i = 0; i < all.Length; i++)
                {
                    bool guard = i < g.Before || i >= g.Before + buf.Length;
                    if (!guard && buf.Role != Role.Input) continue;   // an I32 output: compared below
                    int expected = guard ? Guarded.IdGuard : buf.Ints![i - g.Before];
                    if (all[i] != expected)
                        throw new OpCheckException($"{who}: {(guard ? "guard" : "input")} element {i - g.Before} of {buf} changed from {expected} to {all[i]}\n  case: {_case}");
                }
                continue;
            }
            var values = Download(g.Backend, g.Whole);
            for (int i = 0; i < values.Length; i++)
            {
                bool guard = i < g.Before || i >= g.Before + buf.Length;
                if (guard)
                {
                    double expected = buf.Role == Role.Input ? double.NaN : Guarded.OutputGuard;
                    if (!Same(values[i], expected))
                        throw new OpCheckException($"{who}: wrote out of bounds: guard element {i - g.Before} (valid 0..{buf.Length - 1}) of {buf} is {values[i]}, was {expected}\n  case: {_case}");
                }
                else if (buf.Role == Role.Input && !Same(values[i], buf.Floats![i - g.Before]))
                    throw new OpCheckException($"{who}: modified its input {buf} at {i - g.Before}: {buf.Floats![i - g.Before]} → {values[i]}\n  case: {_case}");
            }
        }
    }

    private static bool Same(double a, double b) => a.Equals(b); // NaN equals NaN here

    internal static double[] Download(IBackend backend, Tensor t)
    {
        var d = new double[t.Length];
        if (t.DType == DType.F64) backend.Download<double>(t, d);
        else
        {
            var f = new float[t.Length];
            backend.Download<float>(t, f);
            for (int i = 0; i < f.Length; i++) d[i] = f[i];
        }
        return d;
    }

    internal static void UploadFloats(IBackend backend, Tensor t, double[] values)
    {
        if (t.DType == DType.F64) backend.Upload<double>(values, t);
        else backend.Upload<float>(Array.ConvertAll(values, v => (float)v), t);
    }
}

/// <summary>A conformance failure: the message names the op, backend, buffer, error and case.</summary>
public sealed class OpCheckException(string message, Exception? inner = null) : Exception(message, inner);
