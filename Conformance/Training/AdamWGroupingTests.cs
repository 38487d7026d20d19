using Llm.Cpu;
using Llm.Models;
using Llm.Tensors;
using Llm.Training;
using Xunit;

namespace Llm.Conformance.Training;

/// <summary>The parameter set keeps each decay group contiguous in its arena, so AdamW runs once per arena and
/// group; the result is bit for bit that of one AdamW call per parameter (the op is elementwise).</summary>
public class AdamWGroupingTests
{
    [Fact]
    public void GroupedUpdatesEqualPerParameterUpdatesBitForBit()
    {
        var backend = new CpuBackend();
        (Decoder Model, AdamW Adam) Make()
        {
            var model = new Decoder(backend, DecoderConfig.Tiny, DType.F32);
            model.InitializeWeights(3);
            var grads = new float[model.Parameters.Count];
            var rng = new Random(5);
            for (int i = 0; i < grads.Length; i++) grads[i] = (float)(rng.NextDouble() - 0.5);
            backend.Upload<float>(grads, model.Parameters.Arenas.Single().Grads!);
            return (model, new AdamW(model.Parameters));
        }
        var (grouped, adam) = Make();
        var (single, reference) = Make();
        for (int step = 1; step <= 3; step++)
        {
            adam.Update(1e-2f);
            reference.Step++;
            foreach (var p in single.Parameters.All)
                backend.AdamW(p.Value, p.Grad!, reference.MOf(p), reference.VOf(p),
                    new AdamWParameters(1e-2f, reference.Step, reference.Beta1, reference.Beta2, reference.Epsilon, p.Decay ? reference.WeightDecay : 0f));
        }
        Assert.Equal(single.Parameters.DownloadValues(), grouped.Parameters.DownloadValues());
        Assert.Equal(2, grouped.Parameters.DecayRuns().Count());
    }

    [Fact]
    public void EachArenaHoldsItsDecayedParametersFirst()
    {
        var backend = new CpuBackend();
        ParameterSpec[] specs = [new("a.bias", [3], false), new("a.weight", [2, 2], true), new("b.bias", [2], false), new("b.weight", [2, 2], true)];
        var set = new ParameterSet(backend, specs, maxArenaElements: 7);   // a.* in arena 0, b.* in arena 1
        Assert.Equal(["a.weight", "a.bias", "b.weight", "b.bias"], set.Layout.Select(p => p.Name));
        Assert.Equal(specs.Select(s => s.Name), set.All.Select(p => p.Name));
        Assert.Equal([(0, 0, 4, true), (0, 4, 3, false), (1, 0, 4, true), (1, 4, 2, false)],
            set.DecayRuns().Select(r => (r.Arena.Index, r.Start, r.Length, r.Decay)));
        long offset = 0;
        foreach (var p in set.Layout) { Assert.Equal(offset, p.Offset); offset += p.Value.Length; }
    }
}
