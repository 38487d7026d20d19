// B batch, T decoder time, Te encoder time, V vocabulary, N = B·T rows
using Llm.Autograd;
using Llm.Tensors;
using Llm.Text;

namespace Llm.Models;

/// <summary>What training, evaluation and checkpoints need of a model, decoder-only (<see cref="Decoder"/>) or
/// encoder-decoder: its parameters, its initialisation, and the forward of one batch to logits.</summary>
public interface ILanguageModel
{
    IBackend Backend { get; }
    ParameterSet Parameters { get; }
    int VocabSize { get; }
    /// <summary>The longest sequence the model takes (each of the encoder's and the decoder's for an encoder-decoder).</summary>
    int ContextLength { get; }
    /// <summary>Deterministic in the seed.</summary>
    void InitializeWeights(ulong seed);
    /// <summary>The training or evaluation forward of one batch: logits [B, T, V] over <see cref="TokenBatch.Inputs"/>
    /// (the decoder's side), with the batch's prefix lengths or encoder inputs, and any auxiliary losses.</summary>
    ModelOutput Forward(Tape tape, TokenBatch batch, DropoutStream? dropout = null);
    /// <summary>The config.json a checkpoint of this model carries, naming <paramref name="tokenizer"/>.</summary>
    IO.IModelConfigFile ConfigFile(string? tokenizer);
}

/// <summary>A forward's logits [B, T, V] and what else the objective adds.</summary>
public sealed record ModelOutput(Var Logits)
{
    /// <summary>Extra terms of the training loss (MoE load balancing, router z-loss), each Weight · Σ Value.</summary>
    public IReadOnlyList<AuxiliaryLoss> Auxiliary { get; init; } = [];
    /// <summary>[N, k] I32 per MoE layer: each token's dispatch slot per choice, −1 where its expert was full (dropped).</summary>
    public IReadOnlyList<Tensor> RoutingSlots { get; init; } = [];
}

/// <summary>One extra term of the objective: the loss adds Weight · Σ_i Value[i] (its gradient seeds every element with Weight).</summary>
public sealed record AuxiliaryLoss(string Name, Var Value, float Weight);
