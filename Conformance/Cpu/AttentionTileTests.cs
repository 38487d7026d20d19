using Llm.Checks;
using Llm.Checks.Ops;
using Llm.Cpu;
using Xunit;

namespace Llm.Conformance.Cpu;

/// <summary>
/// The CPU attention's online softmax across key tiles: rows longer than one tile (1024 keys by default, longer than
/// the catalogue draws) go tile by tile, rescaling the running output and sum, and backward takes Σ att·dAtt as dO·O.
/// Here the tile is shrunk to 7 keys so that the catalogue's attention properties (every mask, GQA, ALiBi, bias,
/// dropout) run through that path against the F64 definition, forward and backward.
/// </summary>
public sealed class AttentionTileTests
{
    [Theory]
    [InlineData(7)]
    [InlineData(1)]
    public void AttentionPropertiesHoldWithSmallKeyTiles(int tile)
    {
        var context = new CheckContext([new Subject($"cpu-fast-tile-{tile}", () => new CpuBackend(attentionKeyTile: tile))]);
        ulong seed = ulong.TryParse(Environment.GetEnvironmentVariable("CONFORMANCE_SEED"), out var s) ? s : (ulong)Random.Shared.NextInt64();
        foreach (var property in AttentionChecks.Properties.Where(p => !p.DefinitionOnly))
        {
            var result = property.Run(context, seed, cases: 40);
            Assert.True(result.Passed, result.ToString());
        }
    }

    [Fact]
    public void OneTileIsTheUntiledKernelBitForBit()
    {
        // a row of exactly one tile (32 keys, tile 32) and the default tile give the same bits: GPT-2's results stay
        float[] Run(int tile)
        {
            var cpu = new CpuBackend(attentionKeyTile: tile);
            int[] shape = [2, 32, 2, 8];
            var q = cpu.Allocate(Tensors.DType.F32, shape); var k = cpu.Allocate(Tensors.DType.F32, shape); var v = cpu.Allocate(Tensors.DType.F32, shape);
            foreach (var t in new[] { q, k, v }) cpu.Upload<float>(Values.Normal(new Llm.Common.Rng(7), t.Length).Select(x => (float)x).ToArray(), t);
            var o = cpu.Allocate(Tensors.DType.F32, shape);
            var m = cpu.Allocate(Tensors.DType.F32, [2, 2, 32]); var l = cpu.Allocate(Tensors.DType.F32, [2, 2, 32]);
            cpu.Attention(q, k, v, null, Tensors.AttentionMask.Causal, o, m, l);
            return [.. CpuBackend.Span<float>(o).ToArray(), .. CpuBackend.Span<float>(l).ToArray()];
        }
        Assert.Equal(Run(AttentionKernel.DefaultKeyTile), Run(32));
        Assert.NotEqual(Run(32), Run(5));   // several tiles: the same function, other roundings
    }
}
