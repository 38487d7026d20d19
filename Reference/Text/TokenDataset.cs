// B batch rows, T time (tokens per row), N tokens in the stream
namespace Llm.Text;

/// <summary>One training or validation batch: B rows of T inputs and the T tokens that follow each.</summary>
/// <param name="Inputs">[B, T] row-major: Inputs[b*T + t] = tokens[start + b*T + t].</param>
/// <param name="Targets">[B, T] row-major: the next token, Targets[b*T + t] = tokens[start + b*T + t + 1].</param>
/// Targets may hold <c>Trainer.IgnoreIndex</c> (−1) where an objective's loss mask leaves a position out.
public sealed record TokenBatch(int[] Inputs, int[] Targets, int B, int T)
{
    /// <summary>[B]: the bidirectional prefix of each row (prefix LM, GLM's blank infilling); null: none.</summary>
    public int[]? PrefixLengths { get; init; }
    /// <summary>[B, EncoderLength]: an encoder-decoder's source ids; <see cref="Inputs"/> are then the decoder's.</summary>
    public int[]? EncoderInputs { get; init; }
    /// <summary>Te, the encoder's time (0 without encoder inputs).</summary>
    public int EncoderLength { get; init; }
}

/// <summary>
/// A token stream cut into a train split and a held-out validation split (the last <c>validationFraction</c> of the
/// tokens), served as [B, T] batches: each row is T inputs and the same T tokens shifted by one as targets.
/// In order (no shuffle seed), as llm.c's first DataLoader: a window of B*T+1 consecutive tokens gives the B rows,
/// training walks the split B*T tokens per batch and wraps to the start. Shuffled (a seed, what `train` uses): every
/// epoch cuts the split into rows of T+1 tokens at a random phase (so row boundaries move between epochs) and serves
/// them in a random order without replacement, as a PyTorch DataLoader with shuffle=True does.
/// (<see cref="Position"/>, <see cref="OrderState"/>) is the whole loader state: saving and restoring it resumes the
/// exact batch sequence.
/// </summary>
public sealed class TokenDataset
{
    public const double DefaultValidationFraction = 0.1;

    readonly int[] tokens;      // [N] all tokens; train = [0, TrainCount), validation = [TrainCount, N)
    long position;              // in order: start of the next window in the train split; shuffled: rows served this epoch
    double? trainUnigramEntropy;
    readonly Common.Rng? order; // shuffled only: draws each epoch's phase and row permutation
    ulong epochState;           // order's state when the current epoch was drawn
    int phase;                  // shuffled: row r starts at phase + r·T
    int[] rows = [];            // shuffled: this epoch's row order, a permutation of [0, R)

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
    /// <param name="shuffleSeed">null: training batches in order; a seed: shuffled rows, a new order every epoch.</param>
    public TokenDataset(ReadOnlySpan<int> tokens, int batchSize, int sequenceLength,
        double validationFraction = DefaultValidationFraction, int? vocabSize = null, ulong? shuffleSeed = null)
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
        TrainCount = TrainCountOf(tokens.Length, validationFraction);
        int validationCount = tokens.Length - TrainCount;

        int window = WindowLength;
        if (TrainCount < window)
            throw new ArgumentException(
                $"train split has {TrainCount} tokens (of {tokens.Length}, validation fraction {validationFraction}) " +
                $"but one batch needs B*T+1 = {batchSize}*{sequenceLength}+1 = {window}; use a longer text or a smaller B or T");
        if (validationCount > 0 && validationCount < window)
            throw new ArgumentException(
                $"validation split has {validationCount} tokens (of {tokens.Length}, validation fraction {validationFraction}) " +
                $"but one batch needs B*T+1 = {batchSize}*{sequenceLength}+1 = {window}; raise the fraction, use 0 for none, or a smaller B or T");
        if (shuffleSeed is { } seed)
        {
            order = new Common.Rng(seed);
            DrawEpoch(seed);
        }
    }

    /// <summary>Shuffled: the order generator's state at the start of the current epoch (0 in order). Saved with
    /// <see cref="Position"/>; <see cref="Restore"/> redraws the same epoch from it.</summary>
    public ulong OrderState => order is null ? 0 : epochState;

    /// <summary>Continues the batch sequence where a saved (position, order state) left it.</summary>
    public void Restore(long savedPosition, ulong savedOrderState)
    {
        if (order is not null) DrawEpoch(savedOrderState);
        Position = savedPosition;
    }

    /// <summary>One epoch of the shuffled order: a phase in [0, min(T, TrainCount − B·T)) that still leaves B full
    /// rows, then a Fisher–Yates permutation of the R = ⌊(TrainCount − 1 − phase) / T⌋ rows.</summary>
    void DrawEpoch(ulong state)
    {
        var rng = order!;
        rng.State = epochState = state;
        int T = SequenceLength;
        phase = rng.NextInt(Math.Min(T, TrainCount - BatchSize * T));
        rows = new int[(TrainCount - 1 - phase) / T];
        for (int i = 0; i < rows.Length; i++) rows[i] = i;
        for (int i = rows.Length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (rows[i], rows[j]) = (rows[j], rows[i]);
        }
    }

    /// <summary>Where a stream of <paramref name="tokens"/> is cut: the first N − round(N·fraction) train, the rest
    /// validate (`eval --held-out` scores that rest).</summary>
    public static int TrainCountOf(int tokens, double validationFraction) => tokens - (int)Math.Round(tokens * validationFraction);

    /// <summary>B*T+1: the tokens one batch reads (the extra one is the last row's last target).</summary>
    public int WindowLength => BatchSize * SequenceLength + 1;

    /// <summary>
    /// In order: the offset in the train split where the next batch starts. Shuffled: the rows of this epoch served
    /// so far. Setting a value past the last full batch is allowed and starts the next epoch (in order: wraps to 0)
    /// on the next batch, as the walk itself does.
    /// </summary>
    public long Position
    {
        get => position;
        set => position = value >= 0 ? value
            : throw new ArgumentException($"the loader position must be non-negative, got {value}");
    }

    /// <summary>Training batches that fit in one pass over the train split.</summary>
    public int TrainBatchesPerEpoch => order is null ? (TrainCount - 1) / (BatchSize * SequenceLength) : rows.Length / BatchSize;

    /// <summary>The next training batch, advancing <see cref="Position"/> (by B*T tokens in order, B rows shuffled).</summary>
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
        if (order is not null)
        {
            int B = BatchSize, T = SequenceLength;
            if (inputs.Length != B * T || targets.Length != B * T)
                throw new ArgumentException($"batch buffers must hold B*T = {B}*{T} = {B * T} tokens; got inputs {inputs.Length}, targets {targets.Length}");
            if (position + B > rows.Length) { DrawEpoch(order.State); position = 0; }  // the next epoch continues the stream
            for (int b = 0; b < B; b++)
            {
                var row = Train.Slice(phase + rows[position + b] * T, T + 1);  // T inputs and the token after them
                row[..T].CopyTo(inputs.Slice(b * T, T));
                row[1..].CopyTo(targets.Slice(b * T, T));
            }
            position += B;
            return;
        }
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
