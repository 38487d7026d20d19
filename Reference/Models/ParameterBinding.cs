using Llm.Autograd;
using Llm.Tensors;

namespace Llm.Models;

/// <summary>A model's named weights bound to its parameter set once, in the model's constructor (the forward reads typed
/// records, never names): the set must hold every weight at its shape, and each bound variable keeps its role, which
/// the initialisation draws by.</summary>
public sealed class ParameterBinding
{
    private readonly ParameterSet _parameters;
    private readonly Dictionary<string, NamedWeight> _weights;
    private readonly Dictionary<Var, ParameterRole> _roles = new(ReferenceEqualityComparer.Instance);

    public ParameterBinding(ParameterSet parameters, IEnumerable<NamedWeight> weights)
    {
        _parameters = parameters;
        _weights = weights.ToDictionary(w => w.Name);
        foreach (var w in _weights.Values)
            if (!parameters.Contains(w.Name) || !parameters[w.Name].Shape.SequenceEqual(w.Shape))
                throw new ArgumentException($"parameter set does not fit the config: '{w.Name}' should be {Tensor.ShapeString(w.Shape)}");
    }

    /// <summary>The role of each parameter bound so far.</summary>
    public IReadOnlyDictionary<Var, ParameterRole> Roles => _roles;

    public bool Has(string name) => _weights.ContainsKey(name);

    public Var Get(string name)
    {
        var v = _parameters[name].Var;
        _roles[v] = _weights[name].Role;
        return v;
    }

    /// <summary>The weight when the config has it (a bias, a LayerNorm's bias), else null.</summary>
    public Var? Maybe(string name) => Has(name) ? Get(name) : null;
}
