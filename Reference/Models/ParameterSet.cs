// P parameters in all, P_a of them in arena a; offsets count elements.
using Llm.Autograd;
using Llm.Tensors;

namespace Llm.Models;

/// <summary>
/// All parameters of a model in a few large allocations (arenas), and their gradients in a second set of the same
/// layout, handed out as named slices (as llm.c does). A GPT-2 fits in one arena; a model larger than one allocation
/// of the backend (2^31 − 1 elements of a .NET array, maxMemoryAllocationSize on a GPU: a 7B model is 7·10⁹) is
/// split between parameters into as many arenas as it needs, so no parameter straddles two. Within an arena the
/// trainable parameters with weight decay come first, the trainable ones without follow, and the frozen ones come
/// last (each group in declaration order), so AdamW updates an arena in one call per decay group. Frozen parameters
/// (fine-tuning trains a few adapters beside a frozen model) get no gradient, no optimizer state and no backward work:
/// an arena's gradients and moments cover only its trainable prefix, at the same offsets as the values. Offsets into
/// the whole set are 64-bit. Gradient clipping treats each arena's gradients as one flat vector.
/// </summary>
public sealed class ParameterSet
{
    public IReadOnlyList<Arena> Arenas { get; }
    /// <summary>Every parameter in the order of the specs (the order of checkpoint files).</summary>
    public IReadOnlyList<Parameter> All { get; }
    /// <summary>Every parameter in layout order: arena by arena, decayed ones first within each, frozen ones last.</summary>
    public IReadOnlyList<Parameter> Layout { get; }
    /// <summary>The parameters that are not frozen, in the order of <see cref="All"/>: those with a gradient and moments.</summary>
    public IReadOnlyList<Parameter> Trainable { get; }
    public IBackend Backend { get; }
    public DType DType { get; }
    private readonly Dictionary<string, Parameter> _byName;

    /// <param name="maxArenaElements">The largest arena; default the backend's <see cref="IBackend.MaxTensorElements"/>.</param>
    /// <param name="frozen">Names the parameters that are not trained (true: frozen); default none.</param>
    public ParameterSet(IBackend backend, IEnumerable<ParameterSpec> specs, DType dtype = DType.F32, int? maxArenaElements = null,
        Func<string, bool>? frozen = null)
    {
        Backend = backend;
        DType = dtype;
        int most = maxArenaElements ?? backend.MaxTensorElements(dtype);
        var list = specs.ToList();

        // Pack the specs in order, starting a new arena where the next one would not fit.
        var groups = new List<List<ParameterSpec>> { new() };
        long inGroup = 0;
        foreach (var s in list)
        {
            int n = Tensor.ElementCount(s.Shape);
            if (n > most)
                throw new ArgumentException($"parameter '{s.Name}' {Tensor.ShapeString(s.Shape)} has {n:N0} elements, more than one allocation of {dtype} on backend '{backend.Name}' can hold ({most:N0})");
            if (inGroup + n > most) { groups.Add([]); inGroup = 0; }
            groups[^1].Add(s);
            inGroup += n;
        }

        bool Frozen(ParameterSpec s) => frozen?.Invoke(s.Name) ?? false;
        var arenas = new List<Arena>(groups.Count);
        var all = new List<Parameter>(list.Count);
        long start = 0;
        foreach (var group in groups)
        {
            int length = group.Sum(s => Tensor.ElementCount(s.Shape));  // ≤ most: fits an int
            int trainable = group.Where(s => !Frozen(s)).Sum(s => Tensor.ElementCount(s.Shape));
            string suffix = groups.Count == 1 ? "" : $".{arenas.Count}";
            var arena = new Arena(arenas.Count, backend.Allocate(dtype, [length], "parameters" + suffix),
                trainable == 0 ? null : backend.Allocate(dtype, [trainable], "gradients" + suffix), start);
            int offset = 0;
            var trained = group.Where(s => !Frozen(s)).ToList();
            foreach (var s in trained.Where(s => s.Decay).Concat(trained.Where(s => !s.Decay)).Concat(group.Where(Frozen)))
            {
                bool isFrozen = Frozen(s);
                all.Add(new Parameter(s.Name, arena.Values.Slice(offset, s.Shape, s.Name),
                    isFrozen ? null : arena.Grads!.Slice(offset, s.Shape, "d" + s.Name), s.Decay, arena.Index, offset, start + offset));
                offset += Tensor.ElementCount(s.Shape);
            }
            arenas.Add(arena);
            start += length;
        }
        Arenas = arenas;
        Layout = all;
        Count = start;
        _byName = all.ToDictionary(p => p.Name);
        All = list.Select(s => _byName[s.Name]).ToList();
        Trainable = All.Where(p => !p.Frozen).ToList();
        TrainableCount = Trainable.Sum(p => (long)p.Value.Length);
    }

    /// <summary>P, the number of parameters (elements) in all arenas.</summary>
    public long Count { get; }
    /// <summary>The elements of the trainable parameters: the length of all gradients, and of each optimizer moment.</summary>
    public long TrainableCount { get; }

    public Parameter this[string name] => _byName.TryGetValue(name, out var p) ? p
        : throw new KeyNotFoundException($"no parameter named '{name}'");

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The runs of trainable parameters that are contiguous in one arena and share a decay setting: (arena,
    /// first element, elements, decay), in layout order; one per arena and decay group, none for frozen parameters.</summary>
    public IEnumerable<(Arena Arena, int Start, int Length, bool Decay)> DecayRuns()
    {
        for (int i = 0; i < Layout.Count;)
        {
            var first = Layout[i];
            int length = 0;
            for (; i < Layout.Count && Layout[i].Arena == first.Arena && Layout[i].Decay == first.Decay && Layout[i].Frozen == first.Frozen; i++)
                length += Layout[i].Value.Length;
            if (!first.Frozen) yield return (Arenas[first.Arena], first.ArenaOffset, length, first.Decay);
        }
    }

    /// <summary>The visible zeroing step before a backward pass (backward ops only accumulate).</summary>
    public void ZeroGrad()
    {
        foreach (var a in Arenas)
            if (a.Grads is { } g) Backend.Fill(g, 0);
    }

    /// <summary>Every parameter value in the order of <see cref="All"/> (the specs', whatever the arenas), as floats on
    /// the host: one download per arena.</summary>
    public float[] DownloadValues()
    {
        if (Count > Array.MaxLength)
            throw new InvalidOperationException($"{Count:N0} parameters do not fit one host array; download them parameter by parameter");
        var layout = new float[Count];   // [P] arena after arena
        foreach (var a in Arenas) Backend.DownloadFloats(a.Values, layout.AsSpan((int)a.Start, a.Values.Length));
        var host = new float[Count];
        int at = 0;
        foreach (var p in All)
        {
            layout.AsSpan((int)p.Offset, p.Value.Length).CopyTo(host.AsSpan(at));
            at += p.Value.Length;
        }
        return host;
    }
}

/// <summary>One allocation of parameters [P_a] and the gradients of its trainable prefix [T_a] (null when every
/// parameter in it is frozen); <paramref name="Start"/> is the offset of its first element among all parameters.</summary>
public sealed record Arena(int Index, Tensor Values, Tensor? Grads, long Start)
{
    /// <summary>T_a, the trainable elements at the start of the arena.</summary>
    public int Trainable => Grads?.Length ?? 0;
}

/// <summary>One named parameter: a slice of its arena's values, the matching slice of its gradients (null: frozen).</summary>
public sealed class Parameter(string name, Tensor value, Tensor? grad, bool decay, int arena, int arenaOffset, long offset)
{
    public string Name { get; } = name;
    public Tensor Value { get; } = value;
    public Tensor? Grad { get; } = grad;
    /// <summary>Not trained: no gradient, no optimizer state, and the tape does no backward work for it.</summary>
    public bool Frozen => Grad is null;
    public bool Decay { get; } = decay;
    /// <summary>Which arena holds it, and where it starts there (elements): optimizer state uses the same place.</summary>
    public int Arena { get; } = arena;
    public int ArenaOffset { get; } = arenaOffset;
    /// <summary>Where it starts among all parameters (64-bit: a large model's set exceeds 2^31 elements).</summary>
    public long Offset { get; } = offset;
    public int[] Shape => Value.Shape;
    /// <summary>The parameter as a tape variable whose gradient is its arena slice; a frozen one needs no gradient.</summary>
    public Var Var => _var ??= new Var(Value, Grad, requiresGrad: !Frozen);
    private Var? _var;
}
