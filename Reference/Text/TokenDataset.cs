// B batch rows, T time (tokens per row), N tokens in the stream
namespace Llm.Text;

/// <summary>One training or validation batch: B rows of T inputs and the T tokens that follow each.</summary>
/// <param name="Inputs">[B, T] row-major: Inputs[b*T + t] = tokens[start + b*T + t].</param>
/// <param name="Targets">[B, T] row-major: the next token, Targets[b*T + t] = tokens[start + b*T + t + 1].</param>
public sealed record TokenBatch(int[] Inputs, int[] Targets, int B, int T);

/// <summary>
/// A token stream cut into a train split and a held-out validation split (the last <c>validationFraction</c> of the
/// tokens), served as [B, T] batches as llm.c's DataLoader does: a window of B*T+1 consecutive tokens gives B rows
/// of inputs and the same rows shifted by one as targets. Training walks the train split in order, B*T tokens per
/// batch, and wraps to the start when the next window would run past the end; <see cref="Position"/> is the whole
/// loader state, so saving and restoring it resumes the exact batch sequence.
/// </summary>
public sealed class TokenDataset
{
    public const double DefaultValidationFraction = 0.1;

    readonly int[] tokens;      // [N] all tokens; train = [0, TrainCount), validation = [TrainCount, N)
    long position;              // start of the next training window inside the train split
    double? trainUnigramEntropy;

    /// <summary>B: rows per batch.</summary>
    public int BatchSize { get; }
    /// <summary>T: tokens per row.</summary>
    public int SequenceLength { get; }
    public double ValidationFraction { get; }
    public int TrainCount { get; }
    public int ValidationCount => tokens.Length - TrainCount;
    public ReadOnlySpan<int> Train => tokens.AsSpan(0, TrainCount);
    public ReadOnlySpan<int> Validation => tokens.AsSpan(TrainCount);

    /// <param name="tokens">The whole token stream; copied, so later changes by the caller have no effect.</param>
    /// <param name="batchSize">B, the rows per batch.</param>
    /// <param name="sequenceLength">T, the tokens per row.</param>
    /// <param name="validationFraction">Share of tokens, taken from the end, held out for validation; 0 for none.</param>
    /// <param name="vocabSize">When given, every token must lie in [0, vocabSize).</param>
    public TokenDataset(ReadOnlySpan<int> tokens, int batchSize, int sequenceLength,
        double validationFraction = DefaultValidationFraction, int? vocabSize = null)
    {
        // messages that stand alone: with a parameter name, .NET appends "(Parameter '...')" and "Actual value was ..."
        if (batchSize <= 0) throw new ArgumentOutOfRangeException($"batch size B must be positive, got {batchSize}", innerException: null);
        if (sequenceLength <= 0) throw new ArgumentOutOfRangeException($"sequence length T must be positive, got {sequenceLength}", innerException: null);
        if (!(validationFraction >= 0 && validationFraction < 1))
            throw new ArgumentOutOfRangeException($"validation fraction must lie in [0, 1), got {validationFraction}", innerException: null);
        if ((long)batchSize * sequenceLength + 1 > int.MaxValue)
            throw new ArgumentException($"B*T+1 = {(long)batchSize * sequenceLength + 1} tokens per batch exceeds 2^31");
        int upper = vocabSize ?? int.MaxValue;
        for (int i = 0; i < tokens.Length; i++)
            if (tokens[i] < 0 || tokens[i] >= upper)
                throw new ArgumentOutOfRangeException(
                    $"token {tokens[i]} at position {i} is outside the vocabulary [0, {(vocabSize is null ? "2^31" : upper)})", innerException: null);

        BatchSize = batchSize;
        SequenceLength = sequenceLength;
        ValidationFraction = validationFraction;
        this.tokens = tokens.ToArray();
        int validationCount = (int)Math.Round(tokens.Length * validationFraction);
        TrainCount = tokens.Length - validationCount;

        int window = WindowLength;
        if (TrainCount < window)
            throw new ArgumentException(
                $"train split has {TrainCount} tokens (of {tokens.Length}, validation fraction {validationFraction}) " +
                $"but one batch needs B*T+1 = {batchSize}*{sequenceLength}+1 = {window}; use a longer text or a smaller B or T");
        if (validationCount > 0 && validationCount < window)
            throw new ArgumentException(
                $"validation split has {validationCount} tokens (of {tokens.Length}, validation fraction {validationFraction}) " +
                $"but one batch needs B*T+1 = {batchSize}*{sequenceLength}+1 = {window}; raise the fraction, use 0 for none, or a smaller B or T");
    }

    /// <summary>B*T+1: the tokens one batch reads (the extra one is the last row's last target).</summary>
    public int WindowLength => BatchSize * SequenceLength + 1;

    /// <summary>
    /// Offset in the train split where the next training batch starts; the loader's whole state. Setting a value
    /// past the last full window is allowed and wraps to 0 on the next batch, as the walk itself does.
    /// </summary>
    public long Position
    {
        get => position;
        set => position = value >= 0 ? value
            : throw new ArgumentOutOfRangeException($"loader position must be non-negative, got {value}", innerException: null);
    }

    /// <summary>Training batches that fit in one pass over the train split.</summary>
    public int TrainBatchesPerEpoch => (TrainCount - 1) / (BatchSize * SequenceLength);

    /// <summary>The next training batch, advancing <see cref="Position"/> by B*T.</summary>
    public TokenBatch NextTrainBatch()
    {
        var inputs = new int[BatchSize * SequenceLength];  // [B, T]
        var targets = new int[BatchSize * SequenceLength]; // [B, T]
        NextTrainBatch(inputs, targets);
        return new TokenBatch(inputs, targets, BatchSize, SequenceLength);
    }

    /// <summary>Writes the next training batch into <paramref name="inputs"/> [B, T] and <paramref name="targets"/> [B, T].</summary>
    public void NextTrainBatch(Span<int> inputs, Span<int> targets)
    {
        // wrap before reading: the window [position, position + B*T] must lie inside the train split
        if (position + WindowLength > TrainCount) position = 0;
        Fill(Train.Slice((int)position, WindowLength), inputs, targets);
        position += BatchSize * SequenceLength;
    }

    /// <summary>
    /// Fixed validation batches: the first <see cref="ValidationBatchCount"/> windows of the validation split,
    /// back to back (each starts B*T after the previous one), so every evaluation sees the same tokens.
    /// </summary>
    public int ValidationBatchCount => ValidationCount == 0 ? 0 : (ValidationCount - 1) / (BatchSize * SequenceLength);

    public TokenBatch ValidationBatch(int index)
    {
        var inputs = new int[BatchSize * SequenceLength];  // [B, T]
        var targets = new int[BatchSize * SequenceLength]; // [B, T]
        ValidationBatch(index, inputs, targets);
        return new TokenBatch(inputs, targets, BatchSize, SequenceLength);
    }

    public void ValidationBatch(int index, Span<int> inputs, Span<int> targets)
    {
        if ((uint)index >= (uint)ValidationBatchCount)
            throw new ArgumentOutOfRangeException(
                $"validation batch index {index} must lie in [0, {ValidationBatchCount}) ({ValidationCount} validation tokens, B*T = {BatchSize * SequenceLength})",
                innerException: null);
        Fill(Validation.Slice(index * BatchSize * SequenceLength, WindowLength), inputs, targets);
    }

    void Fill(ReadOnlySpan<int> window, Span<int> inputs, Span<int> targets)
    {
        int n = BatchSize * SequenceLength;
        if (inputs.Length != n || targets.Length != n)
            throw new ArgumentException(
                $"batch buffers must hold B*T = {BatchSize}*{SequenceLength} = {n} tokens; got inputs {inputs.Length}, targets {targets.Length}");
        // rows are consecutive in the stream, so [B, T] row-major is just the window itself, and targets shift by one
        window[..n].CopyTo(inputs);
        window[1..].CopyTo(targets);
    }

    /// <summary>H of the train split's unigram distribution: the loss of a model that ignores context.</summary>
    public double TrainUnigramEntropy => trainUnigramEntropy ??= UnigramEntropy(Train);

    /// <summary>
    /// Entropy in nats/token of the empirical unigram distribution, H = −Σ_v p_v ln p_v with p_v = count_v / N.
    /// A model's cross-entropy below this means it uses context; above it, it has not yet learned token frequencies.
    /// </summary>
    public static double UnigramEntropy(ReadOnlySpan<int> tokens)
    {
        if (tokens.IsEmpty) throw new ArgumentException("unigram entropy of an empty token sequence is undefined");
        int max = 0;
        for (int i = 0; i < tokens.Length; i++)
        {
            if (tokens[i] < 0) throw new ArgumentOutOfRangeException($"negative token {tokens[i]} at position {i}", innerException: null);
            max = Math.Max(max, tokens[i]);
        }
        var counts = new long[max + 1]; // [V]
        foreach (int token in tokens) counts[token]++;
        double n = tokens.Length, entropy = 0;
        foreach (long count in counts)
            if (count > 0)
            {
                double p = count / n;
                entropy -= p * Math.Log(p);
            }
        return entropy;
    }
}
