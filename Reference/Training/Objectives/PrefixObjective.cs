// B batch rows, T time, P a row's prefix length
using Llm.Text;

namespace Llm.Training.Objectives;

/// <summary>
/// Prefix language modelling (Raffel et al. 2020 §3.2.1; UniLM, GLM): each row draws a prefix length P uniformly in
/// [<see cref="MinPrefix"/>, <see cref="MaxPrefix"/>] (default [1, T − 1]); positions &lt; P see each other
/// bidirectionally (the model needs <see cref="Models.Visibility.Prefix"/>), the rest causally. The loss covers only
/// the tokens after the prefix: position t predicts token t + 1, so targets at t &lt; P − 1 (tokens inside the prefix,
/// which the prefix can see) are ignored. P = 0 is causal LM exactly.
/// </summary>
public sealed class PrefixObjective : Objective
{
    public int MinPrefix { get; }
    public int MaxPrefix { get; }

    public PrefixObjective(int seq, int? minPrefix = null, int? maxPrefix = null) : base(seq)
    {
        MinPrefix = minPrefix ?? 1;
        MaxPrefix = maxPrefix ?? Math.Max(1, seq - 1);
        if (MinPrefix < 0 || MaxPrefix < MinPrefix || MaxPrefix > seq)
            throw new ArgumentOutOfRangeException($"prefix lengths [{MinPrefix}, {MaxPrefix}] must satisfy 0 ≤ min ≤ max ≤ T = {seq}", innerException: null);
    }

    public override string Name => "prefix";
    public override int RawLength => Seq + 1;
    public override bool NeedsPrefixVisibility => true;
    protected override string Summary => $"a bidirectional prefix of P ∈ [{MinPrefix}, {MaxPrefix}] tokens per row, the loss on the tokens after it";

    protected override TokenBatch Transform(TokenBatch raw, ulong seed, long draw)
    {
        int B = raw.B, T = raw.T;
        var targets = (int[])raw.Targets.Clone();  // [B, T]
        var prefix = new int[B];                   // [B]
        for (int b = 0; b < B; b++)
        {
            int p = MinPrefix + RowRng(seed, draw, b).NextInt(MaxPrefix - MinPrefix + 1);
            prefix[b] = p;
            for (int t = 0; t < p - 1; t++) targets[b * T + t] = Trainer.IgnoreIndex;
        }
        return new TokenBatch(raw.Inputs, targets, B, T) { PrefixLengths = prefix };
    }
}
