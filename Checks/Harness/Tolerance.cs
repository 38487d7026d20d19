namespace Llm.Checks;

/// <summary>
/// Two bounds for an F32 subject against the F64 definition on identical inputs: every element a of a buffer whose
/// oracle values are b must satisfy |a − b| ≤ Element·(|b| + S) + Floor (one wrong element anywhere fails),
/// and the whole buffer NMSE = Σ(a − b)² / Σb² ≤ Nmse (a small error on every element fails). S is the buffer's
/// RMS, or the size its elements would have without cancellation where the check states one (<see cref="Buf.Scale"/>):
/// the bound is relative for ordinary elements and relative to the typical size for elements near zero, where f32
/// cancellation leaves an absolute, not a relative, error. Element bounds are ≥ 10× the worst
/// seen over hundreds of cases on every backend here (`llm conformance --cases 400` prints the worst as fractions of
/// the bound) and, except where a case's own parameter scales them (LayerNorm's shift), ≤ 1e-4, which a single
/// element off by 0.1% of the tensor's scale exceeds tenfold.
/// NMSE:  f32 rounds each operation by at most ε = 2⁻²⁴ ≈ 6e-8 relative, so one rounding gives
/// NMSE ≈ ε² ≈ 4e-15; each bound below sits several orders of magnitude above what correct f32 code produces
/// and several below what a wrong formula, a missed term or a skipped element produces (≥ 1e-6, usually ≥ 1e-2).
/// </summary>
/// <param name="Floor">an absolute error always allowed, per element and as an RMS: Σ(a − b)² ≤ Nmse·Σb² + n·Floor². Zero except where
/// the op's formula itself loses relative precision in f32 on some inputs (see <see cref="Gelu"/>), which would
/// make a tensor of only such elements fail by NMSE while every element is within a few ulp of its inputs.</param>
public readonly record struct Tolerance(double Nmse, double Element, string Why, double Floor = 0)
{
    /// <summary>Pure data movement (gather, copy): nothing rounds, so the subject must match bit for bit.</summary>
    public static readonly Tolerance Exact = new(0, 0, "data movement: nothing rounds");

    /// <summary>A few f32 operations per element (add, scale, GeLU's tanh, AdamW's sqrt and divide): a few ulp,
    /// NMSE ≈ 1e-14; 1e-9 leaves 10⁵ headroom for transcendental ulp errors and still catches a different GeLU
    /// approximation (≈ 1e-6) or a missing bias correction. Per element 5e-6 ≈ 80ε: 3.7e-7 seen (AdamW's v).</summary>
    public static readonly Tolerance Elementwise = new(1e-9, 5e-6, "elementwise: a few f32 roundings per element (~1e-14)");

    /// <summary>Short sums in f32 (scatter-add of repeated ids, a row of a few hundred): error ≤ nε relative,
    /// NMSE ≤ (1000 · 6e-8)² ≈ 4e-9 worst case, ≈ 1e-12 typical. Per element 5e-5: 5.2e-6 seen (matmul dBias, ~1500 rows).</summary>
    public static readonly Tolerance Sum = new(1e-7, 5e-5, "f32 sums of up to ~1000 terms: NMSE ≤ (nε)² ≈ 4e-9");

    /// <summary>Dot products of length K ≤ ~600 in f32, in any order (tiles, SIMD lanes, split-K): NMSE ≈ Kε² to
    /// (Kε)² ≈ 1e-9 with random-sign cancellation; 1e-7 is the bound. Per element 2e-5 of (|c| + √K): 2.1e-6 seen.</summary>
    public static readonly Tolerance MatMul = new(1e-7, 2e-5, "f32 dot products, K ≤ ~600: NMSE ≤ (Kε)² ≈ 1e-9");

    /// <summary>Normalizations and softmaxes (LayerNorm, attention, cross-entropy) forward: a row reduction, a
    /// subtraction of the mean or maximum, then exp/rsqrt; cancellation in x − mean and in q·k adds a factor
    /// of |x|/σ, so 1e-6 (relative error 1e-3 of ε-level noise amplified ≤ 10⁴). Per element 1e-4: 1e-5 seen
    /// (LayerNorm's mean; softmax probabilities ≤ 8e-6 of (|p| + RMS), V up to 50257).</summary>
    public static readonly Tolerance Normalize = new(1e-6, 1e-4, "row reduction + exp/rsqrt with cancellation: NMSE ≤ ~1e-8 seen");

    /// <summary>Backward of a normalization or softmax: dx = r(dy − mean(dy) − x̂·mean(dy·x̂)) and
    /// p(dy − Σp·dy) subtract nearly equal terms, amplifying f32 error; 5e-6 (relative error ≈ 2e-3). Per element
    /// 3e-4: 2.4e-5 seen (attention's dQkv; LayerNorm's scales with its shift).</summary>
    public static readonly Tolerance NormalizeBackward = new(5e-6, 3e-4, "backward of normalization/softmax: differences of near-equal sums");

    /// <summary>Attention's backward recomputes att = e^(s − rowMax)/rowSum from f32 scores and f32 row statistics, so att
    /// carries ~2⁻²⁴·|s| relative error (|s| ≤ ~30 at Scale 3) before dS = att ⊙ (dAtt − att·dAtt) cancels; per element
    /// 1e-3: 3.9e-5 seen over 600 cases on cpu-fast (GQA, every mask, ALiBi, score bias).</summary>
    public static readonly Tolerance AttentionBackward = NormalizeBackward with { Element = 1e-3, Why = "attention backward: recomputed probabilities, then the softmax's near-equal differences" };

    /// <summary>A global Σx² returned as double: the contract accumulates in double, but a GPU without fp64
    /// may sum f32 partials in a tree (relative error ≈ log₂(n)·ε ≈ 1e-6, NMSE 1e-12); a serial f32 sum of 10⁵
    /// terms (≈ 1e-3 relative) fails. Per element (the one sum) 1e-6: 7e-8 seen (lavapipe's tree).</summary>
    public static readonly Tolerance GlobalSum = new(1e-11, 1e-6, "global sum of squares: tree/double accumulation");

    /// <summary>GPT-2's ½x(1 + tanh u) cancels in f32 for x ≲ −3 (1 + tanh u ≈ 1e-7 while tanh u carries an
    /// absolute error of a few 6e-8), so a tensor whose elements all sit in that tail has NMSE up to 1 in any
    /// correct f32 implementation of the formula. The floor allows an RMS error of 4e-7 ≈ 6ε·|x| for |x| ≤ ~1
    /// and the elementwise bound covers the rest; a wrong formula errs by ≥ 1e-3 on ordinary inputs.</summary>
    public static readonly Tolerance Gelu = Elementwise with { Floor = 4e-7, Why = "elementwise, with an absolute floor for the f32 cancellation of 1 + tanh u at x ≲ −3" };

    /// <summary>GeLU's derivative in the tail: ½(1 + tanh u) and ½x·sech²u·u′ are each ≈ ε-accurate terms of size ~|x|
    /// whose sum, the derivative, is ~1e-4 at x ≈ −4, so its f32 error is absolute, ≈ ε·|x|³·|dy|, up to ~1e-5 of the
    /// increments' RMS at scale 6 (8.4e-6 seen). The element bound 1e-4 covers that, and an absolute floor of 4e-6
    /// (3e-7 seen on the CPU, 1.2e-6 with lavapipe's tanh, x ≈ −3, one element) keeps a tensor of only such
    /// elements from failing by NMSE.</summary>
    public static readonly Tolerance GeluBackward = Elementwise with { Element = 1e-4, Floor = 4e-6, Why = "elementwise, except the f32 cancellation of gelu' in the tail x ≲ −3" };

    /// <summary>Swish's x·σ(βx) has no cancellation, but for βx ≲ −87 σ underflows f32's smallest normal 1.2e-38 to a
    /// denormal, or to 0 where a GPU flushes denormals, so a tensor of only such elements would fail by NMSE. The floor
    /// 1e-36 ≈ 2⁻¹²⁶·|x| for |x| ≲ 80 allows exactly that underflow; every other element is held to the elementwise bound.</summary>
    public static readonly Tolerance Swish = Elementwise with { Floor = 1e-36, Why = "elementwise, with an absolute floor for σ(βx) underflowing f32 at βx ≲ −87" };

    /// <summary>Swish's derivative s + z·s(1 − s), z = βx, s = σ(z), crosses 0 at z ≈ −1.28, where its two terms of size
    /// ≈ 0.22 cancel: an absolute f32 error of a few ε·0.22·|dy|, unbounded relative to a tensor of only such elements
    /// (a 1×1 case). The floor 1e-6 ≈ 4ε·|dy| for |dy| ≲ 4 covers that; a wrong derivative errs by ≥ 1e-3 on ordinary inputs.</summary>
    public static readonly Tolerance SwishBackward = Elementwise with { Floor = 1e-6, Why = "elementwise, with an absolute floor for the f32 cancellation of swish' near its zero z ≈ −1.28" };

    /// <summary>ReLU's max(0, x) selects an input and rounds nothing, so the subject must match bit for bit (−0 = +0).</summary>
    public static readonly Tolerance Relu = Exact with { Why = "selection: max(0, x) rounds nothing" };

    /// <summary>ReLU's backward adds dy to dInput where x &gt; 0: one f32 rounding, ≤ ½ulp against F64's exact sum; the
    /// elementwise bound, 2.6e-7 seen (CPU and lavapipe).</summary>
    public static readonly Tolerance ReluBackward = Elementwise with { Why = "elementwise: one f32 addition per element" };

    /// <summary>Exact GeLU's x·Φ(x), Φ = ½erfc(−x/√2), keeps its relative accuracy in the tail (erfc, no 1 + erf cancellation),
    /// but for x ≲ −13 x·Φ(x) drops below f32's smallest normal 1.2e-38: a denormal, or 0 where a GPU flushes denormals, so
    /// a tensor of only such elements would fail by NMSE. The floor 1e-36 allows exactly that underflow; everything else is
    /// held to the elementwise bound: 9e-8 seen on the CPU, 1.2e-7 on lavapipe (its exp).</summary>
    public static readonly Tolerance GeluExact = Elementwise with { Floor = 1e-36, Why = "elementwise, with an absolute floor for x·Φ(x) underflowing f32 at x ≲ −13" };

    /// <summary>Exact GeLU's derivative Φ(x) + x·φ(x) crosses 0 at x ≈ −0.75, where its two terms of size ≈ 0.23 cancel: an
    /// absolute f32 error of a few ε·0.23·|dy|, unbounded relative to a tensor of only such elements. The floor 1e-6 ≈ 4ε·|dy|
    /// for |dy| ≲ 4 covers that; a wrong derivative errs by ≥ 1e-4 on ordinary inputs (the tanh form's, the closest); 2.6e-7 seen (CPU and lavapipe).</summary>
    public static readonly Tolerance GeluExactBackward = Elementwise with { Floor = 1e-6, Why = "elementwise, with an absolute floor for the f32 cancellation of gelu' near its zero x ≈ −0.75" };

    /// <summary>The product a·b and the gradients dA += dy·b, dB += dy·a: one or two f32 roundings per element, no
    /// cancellation beyond the accumulation's own; the elementwise bound, the gradients' scale being the size of the f32 sum: 1.9e-7 seen (dB, CPU and lavapipe).</summary>
    public static readonly Tolerance Multiply = Elementwise with { Why = "elementwise: one product (and one sum) per element" };
    /// <summary>Dropout's kept elements x·fl(1/(1 − p)) and dInput += dy·fl(1/(1 − p)): the factor rounds once from double and
    /// the product (and sum) once more, ≤ 1.5 ulp, no cancellation; the elementwise bound. Which elements are dropped is
    /// checked exactly, apart from this tolerance.</summary>
    public static readonly Tolerance Dropout = Elementwise with { Why = "elementwise: a rounded factor, one product (and one sum) per kept element" };
    /// <summary>RoPE at positions up to P, against exact angles pos·θ^(−2i/d): the f32 angle fl(pos·fl(1/fl(θ^fl(2i/d))))
    /// (Hugging Face's steps) errs by |Δa| ≤ pos·θ^(−e)·(e·ln θ + 3)·ε ≤ 3·P·ε, e = 2i/d ∈ [0, 1): the exponent's
    /// rounding, scaled by ln θ in the power, dies out as θ^(−e) shrinks the angle. An element x_i cos a − x_p sin a
    /// moves by up to |(x_i, x_p)|·|Δa|, and sin/cos, the two products and the sum add ~4ε: per element
    /// (4 + 3P)·ε of the largest pair's length (the buffer's Scale), an error HF's own f32 RoPE has. Worst seen over
    /// 300 cases (`llm conformance --ops "Rope*"`): 0.26 of that on the CPU, 0.25 on lavapipe (its sin/cos after the
    /// shader's own reduction mod 2π), so the bound is 4× it, 2.3e-2 at P = 2¹⁵. NMSE 4(P·ε)² + 1e-9: 0.005 of it seen.</summary>
    public static Tolerance Rope(int maxPosition)
    {
        double drift = Math.Abs((double)maxPosition) * Compare.F32Rounding;   // P·ε
        return new(1e-9 + 4 * drift * drift, 4 * (4 * Compare.F32Rounding + 3 * drift),
            $"rotation by an f32 angle whose error grows with the position (≤ {maxPosition}): 4(4 + 3P)·ε per element");
    }

    /// <summary>Cross-entropy losses: a confidently right row has loss ≈ e^−100 ≈ 0 in F64, while any f32
    /// log-sum-exp returns log(1 + ulp) ≈ 1.2e-7, an infinite NMSE for a one-row batch. The floor allows an RMS
    /// error of 5e-7 ≈ 8ε absolute, which no wrong loss formula stays within.</summary>
    public static readonly Tolerance Loss = Normalize with { Floor = 5e-7, Why = "losses: row reduction + log, with an absolute floor of ~8ε for losses near 0" };

    public override string ToString() =>
        $"|a − b| ≤ {Element:0.#E+0}·(|b| + RMS) and NMSE ≤ {Nmse:0.#E+0}{(Floor > 0 ? $", floor {Floor:0.#E+0}" : "")} ({Why})";
}
