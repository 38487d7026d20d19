// B batch rows, T time
using Llm.Text;

namespace Llm.Training.Objectives;

/// <summary>Causal language modelling (GPT): every position predicts the next token from the ones before it. The
/// dataset's batch is the model's batch unchanged (R = T + 1), so runs are bit-identical to training without objectives.</summary>
public sealed class CausalObjective(int seq) : Objective(seq)
{
    public override string Name => "causal";
    public override int RawLength => Seq + 1;
    protected override string Summary => "every position predicts the next token from those before it";
    protected override TokenBatch Transform(TokenBatch raw, ulong seed, long draw) => raw;
}
