using Llm.Cpu;
using Llm.Tensors;
using Llm.Vulkan;
using Xunit;

using static Llm.Conformance.Vulkan.VulkanTestData;

namespace Llm.Conformance.Vulkan;

/// <summary>
/// Embedding, LayerNorm, RMSNorm, CrossEntropy and AdamW on Vulkan beyond what the conformance properties (Conformance/Ops)
/// reach: shapes past the 65535-workgroup limit and GPT-2's vocabulary, bit-for-bit determinism of the
/// scatter-adds and column sums, and the device-side range check of ids and targets, which throws at the next
/// Synchronize or Download. Every test ends with the validation layer silent.
/// </summary>
public class VulkanOpsTests(VulkanFixture fixture) : IClassFixture<VulkanFixture>
{
    private static readonly CpuBackend Cpu = new(fastPaths: false);

    // ---- against the Reference on shapes the properties do not reach ---------------------------------------------

    /// <summary>70000 rows: more than the 65535 workgroups of one dispatch, so the row kernels stride over rows, and
    /// more than lavapipe's 65535 loop iterations per invocation, which the two-level column sums stay far below.</summary>
    [SkippableTheory]
    [InlineData(70_000, 3)]
    [InlineData(5, 1)]
    [InlineData(3, 777)]
    public void LayerNormForwardAndBackwardMatchTheReference(int rows, int c)
    {
        var vk = fixture.Backend;
        float[] x = Random(rows * c, 1, 2, 30), w = Random(c, 2, 0.5f, 1), b = Random(c, 3), dy = Random(rows * c, 4);
        float[] dx0 = Random(rows * c, 5), dw0 = Random(c, 6), db0 = Random(c, 7);
        var results = new Dictionary<IBackend, float[][]>();
        foreach (IBackend be in new IBackend[] { vk, Cpu })
        {
            Tensor input = Put(be, x, rows, c), output = be.Allocate(DType.F32, [rows, c]);
            Tensor mean = be.Allocate(DType.F32, [rows]), rstd = be.Allocate(DType.F32, [rows]);
            Tensor dInput = Put(be, dx0, rows, c), dWeight = Put(be, dw0), dBias = Put(be, db0);
            be.LayerNorm(input, Put(be, w), Put(be, b), output, mean, rstd);
            be.LayerNormBackward(Put(be, dy, rows, c), input, Put(be, w), mean, rstd, dInput, dWeight, dBias);
            results[be] = [Get(be, output), Get(be, mean), Get(be, rstd), Get(be, dInput), Get(be, dWeight), Get(be, dBias)];
        }
        string[] names = ["output", "mean", "rstd", "dInput", "dWeight", "dBias"];
        for (int i = 0; i < names.Length; i++)
            AssertClose(results[Cpu][i], results[vk][i], 1e-6, $"layernorm {names[i]} [{rows}, {c}]");
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>As <see cref="LayerNormForwardAndBackwardMatchTheReference"/>: rows striding past 65535 workgroups, the
    /// dWeight column sum past lavapipe's loop budget, a one-channel row, and a row wider than one workgroup.</summary>
    [SkippableTheory]
    [InlineData(70_000, 3)]
    [InlineData(5, 1)]
    [InlineData(3, 777)]
    public void RmsNormForwardAndBackwardMatchTheReference(int rows, int c)
    {
        var vk = fixture.Backend;
        float[] x = Random(rows * c, 1, 2, 30), w = Random(c, 2, 0.5f, 1), dy = Random(rows * c, 4);
        float[] dx0 = Random(rows * c, 5), dw0 = Random(c, 6);
        var results = new Dictionary<IBackend, float[][]>();
        foreach (IBackend be in new IBackend[] { vk, Cpu })
        {
            Tensor input = Put(be, x, rows, c), output = be.Allocate(DType.F32, [rows, c]), rstd = be.Allocate(DType.F32, [rows]);
            Tensor dInput = Put(be, dx0, rows, c), dWeight = Put(be, dw0);
            be.RmsNorm(input, Put(be, w), output, rstd);
            be.RmsNormBackward(Put(be, dy, rows, c), input, Put(be, w), rstd, dInput, dWeight);
            results[be] = [Get(be, output), Get(be, rstd), Get(be, dInput), Get(be, dWeight)];
        }
        string[] names = ["output", "rstd", "dInput", "dWeight"];
        for (int i = 0; i < names.Length; i++)
            AssertClose(results[Cpu][i], results[vk][i], 1e-6, $"rmsnorm {names[i]} [{rows}, {c}]");
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>GPT-2's vocabulary (50257 = 196·256 + 81: a ragged last sweep) and 70000 two-logit rows.</summary>
    [SkippableTheory]
    [InlineData(3, 50257)]
    [InlineData(70_000, 2)]
    public void CrossEntropyForwardAndBackwardMatchTheReference(int rows, int vocab)
    {
        var vk = fixture.Backend;
        float[] logits = Random(rows * vocab, 8, 40), dLosses = Random(rows, 9), dLogits0 = Random(rows * vocab, 10);
        int[] targets = Enumerable.Range(0, rows).Select(n => n % 5 == 1 ? -100 : n * 7919 % vocab).ToArray();
        var results = new Dictionary<IBackend, float[][]>();
        foreach (IBackend be in new IBackend[] { vk, Cpu })
        {
            Tensor probs = be.Allocate(DType.F32, [rows, vocab]), losses = be.Allocate(DType.F32, [rows]);
            Tensor ids = PutIds(be, targets), dLogits = Put(be, dLogits0, rows, vocab);
            be.CrossEntropy(Put(be, logits, rows, vocab), ids, probs, losses, ignoreIndex: -100);
            be.CrossEntropyBackward(Put(be, dLosses), probs, ids, dLogits, ignoreIndex: -100);
            results[be] = [Get(be, probs), Get(be, losses), Get(be, dLogits)];
        }
        AssertClose(results[Cpu][0], results[vk][0], 1e-6, "probs");
        AssertClose(results[Cpu][1], results[vk][1], 1e-6, "losses");
        AssertClose(results[Cpu][2], results[vk][2], 1e-9, "dLogits");
        for (int n = 1; n < rows; n += 5) Assert.Equal(0f, results[vk][1][n]);   // ignored rows: loss exactly 0
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>Same additions in the same order as the CPU definition (positions in order per channel): bit-identical,
    /// even with every id repeated many times; and the same again on a second run. 70000 positions take several
    /// dispatches (lavapipe cuts longer loops short).</summary>
    [SkippableTheory]
    [InlineData(1000, 7, 300)]
    [InlineData(70_000, 5, 3)]
    public void EmbeddingBackwardIsBitIdenticalToTheReferenceAndRepeatable(int n, int vocab, int c)
    {
        var vk = fixture.Backend;
        int[] ids = Enumerable.Range(0, n).Select(i => (int)((long)i * i % vocab)).ToArray();
        float[] table = Random(vocab * c, 11), dOutput = Random(n * c, 12, 3), dTable0 = Random(vocab * c, 13);
        var forward = new Dictionary<IBackend, float[]>();
        var backward = new Dictionary<IBackend, float[]>();
        foreach (IBackend be in new IBackend[] { vk, Cpu })
        {
            Tensor output = be.Allocate(DType.F32, [n, c]), dTable = Put(be, dTable0, vocab, c), idTensor = PutIds(be, ids);
            be.Embedding(idTensor, Put(be, table, vocab, c), output);
            be.EmbeddingBackward(Put(be, dOutput, n, c), idTensor, dTable);
            forward[be] = Get(be, output);
            backward[be] = Get(be, dTable);
        }
        Assert.Equal(forward[Cpu], forward[vk]);
        Assert.Equal(backward[Cpu], backward[vk]);
        var again = Put(vk, dTable0, vocab, c);
        vk.EmbeddingBackward(Put(vk, dOutput, n, c), PutIds(vk, ids), again);
        Assert.Equal(backward[vk], Get(vk, again));
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>Frozen gains and biases: backward with null parameter gradients skips their column sums, and its dInput
    /// is bit for bit that of the full backward (the row pass does not depend on them). 70000 rows stride past 65535
    /// workgroups.</summary>
    [SkippableTheory]
    [InlineData(70_000, 3)]
    [InlineData(3, 777)]
    public void NormBackwardWithoutParameterGradientsGivesTheSameInputGradient(int rows, int c)
    {
        var vk = fixture.Backend;
        float[] x = Random(rows * c, 1, 2, 30), w = Random(c, 2, 0.5f, 1), dy = Random(rows * c, 4), dx0 = Random(rows * c, 5);
        Tensor input = Put(vk, x, rows, c), weight = Put(vk, w), dOutput = Put(vk, dy, rows, c);
        Tensor mean = vk.Allocate(DType.F32, [rows]), rstd = vk.Allocate(DType.F32, [rows]);
        vk.LayerNorm(input, weight, Put(vk, Random(c, 3)), vk.Allocate(DType.F32, [rows, c]), mean, rstd);
        float[] LayerNormInputGradient(bool wantWeight, bool wantBias)
        {
            Tensor dx = Put(vk, dx0, rows, c);
            vk.LayerNormBackward(dOutput, input, weight, mean, rstd, dx,
                wantWeight ? vk.Allocate(DType.F32, [c]) : null, wantBias ? vk.Allocate(DType.F32, [c]) : null);
            return Get(vk, dx);
        }
        var full = LayerNormInputGradient(true, true);
        Assert.Equal(full, LayerNormInputGradient(false, false));
        Assert.Equal(full, LayerNormInputGradient(false, true));
        Assert.Equal(full, LayerNormInputGradient(true, false));

        vk.RmsNorm(input, weight, vk.Allocate(DType.F32, [rows, c]), rstd);
        float[] RmsNormInputGradient(bool wantWeight)
        {
            Tensor dx = Put(vk, dx0, rows, c);
            vk.RmsNormBackward(dOutput, input, weight, rstd, dx, wantWeight ? vk.Allocate(DType.F32, [c]) : null);
            return Get(vk, dx);
        }
        Assert.Equal(RmsNormInputGradient(true), RmsNormInputGradient(false));
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void LayerNormBackwardColumnSumsAreRepeatable()
    {
        var vk = fixture.Backend;
        const int rows = 513, c = 97;
        Tensor x = Put(vk, Random(rows * c, 14, 1, 3), rows, c), w = Put(vk, Random(c, 15));
        Tensor mean = vk.Allocate(DType.F32, [rows]), rstd = vk.Allocate(DType.F32, [rows]), dy = Put(vk, Random(rows * c, 16), rows, c);
        vk.LayerNorm(x, w, Put(vk, Random(c, 17)), vk.Allocate(DType.F32, [rows, c]), mean, rstd);
        float[][] Run()
        {
            Tensor dx = vk.Allocate(DType.F32, [rows, c]), dw = vk.Allocate(DType.F32, [c]), db = vk.Allocate(DType.F32, [c]);
            vk.LayerNormBackward(dy, x, w, mean, rstd, dx, dw, db);
            return [Get(vk, dx), Get(vk, dw), Get(vk, db)];
        }
        var first = Run();
        var second = Run();
        for (int i = 0; i < 3; i++) Assert.Equal(first[i], second[i]);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableTheory]
    [InlineData(1, 1)]
    [InlineData(3, 70_001)]
    public void AdamWMatchesTheReference(int step, int n)
    {
        var vk = fixture.Backend;
        float[] p = Random(n, 18), g = Random(n, 19, 0.1f), m = Random(n, 20, 0.05f), v = Random(n, 21, 0.05f).Select(x => x * x).ToArray();
        var hyper = new AdamWParameters(6e-3f, step, WeightDecay: 0.1f);
        var results = new Dictionary<IBackend, float[][]>();
        foreach (IBackend be in new IBackend[] { vk, Cpu })
        {
            Tensor tp = Put(be, p), tm = Put(be, m), tv = Put(be, v);
            be.AdamW(tp, Put(be, g), tm, tv, hyper);
            results[be] = [Get(be, tp), Get(be, tm), Get(be, tv)];
        }
        for (int i = 0; i < 3; i++) AssertClose(results[Cpu][i], results[vk][i], 1e-12, $"adamw buffer {i}");
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => vk.AdamW(Put(vk, p), Put(vk, g), Put(vk, m), Put(vk, v), hyper with { Step = 0 }));
        Assert.Contains("step is 1-based, got 0", error.Message);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>With bindings limited to 4 KiB every op goes in many chunks (positions, table slices, rows, elements):
    /// the results are those of the unchunked Reference, bad ids are still found and named by their whole-tensor
    /// position.</summary>
    [SkippableFact]
    public void ChunkedDispatchesForTensorsBeyondOneBindingMatchTheReference()
    {
        using var vk = VulkanTestDevice.OpenWithLimits(maxBindingBytes: 4096);                   // 1024 floats: one logits row
        const int n = 300, vocab = 80, c = 24, v = 700;                                           // [80, 24]: 42 rows per slice
        int[] ids = Enumerable.Range(0, n).Select(i => i * 7 % vocab).ToArray();
        int[] targets = Enumerable.Range(0, n).Select(i => i % 9 == 4 ? -1 : i * 13 % v).ToArray();
        float[] table = Random(vocab * c, 26), dy = Random(n * c, 27), dTable0 = Random(vocab * c, 28), w = Random(c, 29), b = Random(c, 30);
        float[] logits = Random(n * v, 31, 4), dLosses = Random(n, 32), dLogits0 = Random(n * v, 33);
        var results = new Dictionary<IBackend, float[][]>();
        foreach (IBackend be in new IBackend[] { vk, Cpu })
        {
            Tensor idTensor = PutIds(be, ids), output = be.Allocate(DType.F32, [n, c]), dTable = Put(be, dTable0, vocab, c);
            be.Embedding(idTensor, Put(be, table, vocab, c), output);
            be.EmbeddingBackward(Put(be, dy, n, c), idTensor, dTable);
            Tensor normalized = be.Allocate(DType.F32, [n, c]), mean = be.Allocate(DType.F32, [n]), rstd = be.Allocate(DType.F32, [n]);
            Tensor dx = Put(be, dy, n, c), dw = Put(be, w), db = Put(be, b);
            be.LayerNorm(output, Put(be, w), Put(be, b), normalized, mean, rstd);
            be.LayerNormBackward(Put(be, dy, n, c), output, Put(be, w), mean, rstd, dx, dw, db);
            Tensor targetTensor = PutIds(be, targets), probs = be.Allocate(DType.F32, [n, v]), losses = be.Allocate(DType.F32, [n]), dLogits = Put(be, dLogits0, n, v);
            be.CrossEntropy(Put(be, logits, n, v), targetTensor, probs, losses);
            be.CrossEntropyBackward(Put(be, dLosses), probs, targetTensor, dLogits);
            Tensor param = Put(be, logits), grad = Put(be, dLogits0), m = be.Allocate(DType.F32, [n * v]), second = be.Allocate(DType.F32, [n * v]);
            be.AdamW(param, grad, m, second, new AdamWParameters(1e-2f, 2));
            results[be] = [Get(be, output), Get(be, dTable), Get(be, normalized), Get(be, dx), Get(be, dw), Get(be, db),
                Get(be, probs), Get(be, losses), Get(be, dLogits), Get(be, param)];
        }
        Assert.Equal(results[Cpu][0], results[vk][0]);                 // gather: exact
        Assert.Equal(results[Cpu][1], results[vk][1]);                 // scatter-add in the Reference's order: exact
        string[] names = ["", "", "layernorm", "dInput", "dWeight", "dBias", "probs", "losses", "dLogits", "adamw param"];
        for (int i = 2; i < names.Length; i++) AssertClose(results[Cpu][i], results[vk][i], 1e-6, $"chunked {names[i]}");

        var badIds = (int[])ids.Clone();
        badIds[250] = vocab;                                           // in the last chunk of positions
        vk.EmbeddingBackward(Put(vk, dy, n, c), PutIds(vk, badIds), vk.Allocate(DType.F32, [vocab, c]));
        var error = Assert.Throws<ArgumentOutOfRangeException>(vk.Synchronize);
        Assert.Contains($"id {vocab} at position 250 is outside [0, {vocab})", error.Message);
        var badTargets = (int[])targets.Clone();
        badTargets[299] = v + 1;
        vk.CrossEntropy(Put(vk, logits, n, v), PutIds(vk, badTargets), vk.Allocate(DType.F32, [n, v]), vk.Allocate(DType.F32, [n]));
        error = Assert.Throws<ArgumentOutOfRangeException>(vk.Synchronize);
        Assert.Contains($"row 299 has target {v + 1}", error.Message);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>Dropout over 5000 elements with 4 KiB bindings (5 chunks) from an offset 1500 below 2³²: each chunk's start
    /// adds to the stream offset and the counter carries into its high word mid-tensor; the mask is the Reference's exactly.</summary>
    [SkippableFact]
    public void ChunkedDropoutDrawsTheReferencesStreamAcrossChunksAndTheCarry()
    {
        using var vk = VulkanTestDevice.OpenWithLimits(maxBindingBytes: 4096);
        const int n = 5000;
        const long offset = (1L << 32) - 1500;
        const ulong seed = 0xfeedfacecafebeef;
        float[] x = Random(n, 34), dInput0 = Random(n, 35);
        var results = new Dictionary<IBackend, float[][]>();
        foreach (IBackend be in new IBackend[] { vk, Cpu })
        {
            Tensor output = be.Allocate(DType.F32, [n]), dInput = Put(be, dInput0);
            be.Dropout(Put(be, x), output, 0.3f, seed, offset);
            be.DropoutBackward(Put(be, x), dInput, 0.3f, seed, offset);
            results[be] = [Get(be, output), Get(be, dInput)];
        }
        Assert.Equal(results[Cpu][0], results[vk][0]);                 // one f32 product per kept element: exact
        for (int i = 0; i < n; i++) Assert.Equal(results[Cpu][1][i] == dInput0[i], results[vk][1][i] == dInput0[i]);
        AssertClose(results[Cpu][1], results[vk][1], 1e-6, "chunked dropout dInput");
        VulkanTestDevice.AssertClean(vk);
    }

    // ---- bad ids and targets: found on the device, thrown at the next Synchronize or Download ---------------------

    [SkippableFact]
    public void AnEmbeddingIdOutOfRangeThrowsAtSynchronizeNamingTheFirstBadPosition()
    {
        var vk = fixture.Backend;
        Tensor table = Put(vk, Random(5 * 4, 22), 5, 4), output = vk.Allocate(DType.F32, [6, 4]);
        var ids = PutIds(vk, [0, 4, 1, 9, -2, 5]);
        vk.Embedding(ids, table, output);
        var error = Assert.Throws<ArgumentOutOfRangeException>(vk.Synchronize);
        Assert.Equal("ids", error.ParamName);
        Assert.Contains("embedding: tensor [6] I32 into tensor [5, 4] F32: id 9 at position 3 is outside [0, 5)", error.Message);
        vk.Synchronize();                                        // reported once; the backend goes on working
        var row = new float[4];
        vk.Download<float>(output.Slice(12, [4]), row);
        Assert.All(row, x => Assert.Equal(0f, x));               // the bad row read nothing

        vk.EmbeddingBackward(Put(vk, Random(6 * 4, 23), 6, 4), ids, vk.Allocate(DType.F32, [5, 4], "dTable"));
        error = Assert.Throws<ArgumentOutOfRangeException>(() => vk.Download<float>(output, new float[24]));
        Assert.Contains("embedding backward: tensor [6] I32 into dTable [5, 4] F32: id 9 at position 3", error.Message);
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void ACrossEntropyTargetOutOfRangeThrowsAtTheNextDownload()
    {
        var vk = fixture.Backend;
        Tensor logits = Put(vk, Random(4 * 3, 24), 4, 3), probs = vk.Allocate(DType.F32, [4, 3]), losses = vk.Allocate(DType.F32, [4]);
        var targets = PutIds(vk, [2, -1, 3, 0]);                 // −1 is the ignore index, 3 is not a class
        vk.CrossEntropy(logits, targets, probs, losses);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Get(vk, losses));
        Assert.Equal("targets", error.ParamName);
        Assert.Contains("cross-entropy: tensor [4] I32 for tensor [4, 3] F32: row 2 has target 3, outside [0, 3) and not the ignore index -1", error.Message);

        vk.CrossEntropyBackward(Put(vk, [1f, 1f, 1f, 1f]), probs, targets, vk.Allocate(DType.F32, [4, 3]), ignoreIndex: 0);
        error = Assert.Throws<ArgumentOutOfRangeException>(vk.Synchronize);
        Assert.Contains("row 1 has target -1, outside [0, 3) and not the ignore index 0", error.Message);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>More checked ops than slots between two read-backs: the slots are read back early, the error survives.</summary>
    [SkippableFact]
    public void ManyCheckedOpsBetweenReadBacksStillReportTheBadOne()
    {
        var vk = fixture.Backend;
        Tensor table = Put(vk, Random(3 * 2, 25), 3, 2), output = vk.Allocate(DType.F32, [2, 2]);
        Tensor good = PutIds(vk, [0, 2]), bad = PutIds(vk, [1, 3]);
        for (int i = 0; i < 100; i++) vk.Embedding(good, table, output);
        vk.Synchronize();
        for (int i = 0; i < 50; i++) vk.Embedding(good, table, output);
        vk.Embedding(bad, table, output);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
        {
            for (int i = 0; i < 100; i++) vk.Embedding(good, table, output);
            vk.Synchronize();
        });
        Assert.Contains("id 3 at position 1 is outside [0, 3)", error.Message);
        vk.Synchronize();
        VulkanTestDevice.AssertClean(vk);
    }

    [SkippableFact]
    public void ShapeErrorsHaveTheReferenceMessages()
    {
        var vk = fixture.Backend;
        Tensor ids = PutIds(vk, [0, 1]), table = vk.Allocate(DType.F32, [3, 4], "wte");
        var e = Assert.Throws<ArgumentException>(() => vk.Embedding(ids, table, vk.Allocate(DType.F32, [2, 5], "out")));
        Assert.Equal("embedding: out [2, 5] F32 must be [2, 4] (one row of 4 per id)", e.Message);
        e = Assert.Throws<ArgumentException>(() => vk.Embedding(table, table, table));
        Assert.Equal("embedding: wte [3, 4] F32 must be I32", e.Message);
        e = Assert.Throws<ArgumentException>(() => vk.LayerNorm(table, vk.Allocate(DType.F32, [3], "w"), vk.Allocate(DType.F32, [4]),
            table, vk.Allocate(DType.F32, [3]), vk.Allocate(DType.F32, [3])));
        Assert.Equal("layernorm: w [3] F32 must have shape [4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => vk.CrossEntropy(table, ids, table, vk.Allocate(DType.F32, [3])));
        Assert.Equal("cross-entropy: tensor [2] I32 must have 3 elements", e.Message);
        vk.Synchronize();
        VulkanTestDevice.AssertClean(vk);
    }
}
