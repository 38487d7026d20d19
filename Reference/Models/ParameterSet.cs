using Llm.Autograd;
using Llm.Tensors;

namespace Llm.Models;

/// <summary>
/// All parameters of a model in ONE allocation, and their gradients in a second one of the same layout, handed out
/// as named slices (as llm.c does). The optimizer state uses the same layout, so AdamW and gradient clipping can
/// treat each tensor, or the whole arena, as one flat vector.
/// </summary>
public sealed class ParameterSet
{
    public Tensor Values { get; }   // [P] every parameter, concatenated in spec order
    public Tensor Grads { get; }    // [P] their gradients, same offsets
    public IReadOnlyList<Parameter> All { get; }
    private readonly Dictionary<string, Parameter> _byName;

    public ParameterSet(IBackend backend, IEnumerable<ParameterSpec> specs, DType dtype = DType.F32)
    {
        var list = specs.ToList();
        int total = checked(list.Sum(s => Tensor.ElementCount(s.Shape)));
        Values = backend.Allocate(dtype, [total], "parameters");
        Grads = backend.Allocate(dtype, [total], "gradients");
        var all = new List<Parameter>(list.Count);
        int offset = 0;
        foreach (var s in list)
        {
            all.Add(new Parameter(s.Name, Values.Slice(offset, s.Shape, s.Name), Grads.Slice(offset, s.Shape, "d" + s.Name), s.Decay, offset));
            offset += Tensor.ElementCount(s.Shape);
        }
        All = all;
        _byName = all.ToDictionary(p => p.Name);
    }

    public long Count => Values.Length;

    public Parameter this[string name] => _byName.TryGetValue(name, out var p) ? p
        : throw new KeyNotFoundException($"no parameter named '{name}'");

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The visible zeroing step before a backward pass (backward ops only accumulate).</summary>
    public void ZeroGrad() => Grads.Backend.Fill(Grads, 0);
}

/// <summary>One named parameter: a slice of the value arena, the matching slice of the gradient arena.</summary>
public sealed class Parameter(string name, Tensor value, Tensor grad, bool decay, int offset)
{
    public string Name { get; } = name;
    public Tensor Value { get; } = value;
    public Tensor Grad { get; } = grad;
    public bool Decay { get; } = decay;
    /// <summary>Where this slice starts in the arena (elements); optimizer state uses the same offsets.</summary>
    public int Offset { get; } = offset;
    public int[] Shape => Value.Shape;
    /// <summary>The parameter as a tape variable whose gradient is its arena slice.</summary>
    public Var Var => _var ??= new Var(Value, Grad);
    private Var? _var;
}
