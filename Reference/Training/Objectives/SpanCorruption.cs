// B batch rows, L raw tokens per row, n noise spans, Te encoder time, Td decoder time, T the decoder-only time
using System.Text;
using Llm.Text;

namespace Llm.Training.Objectives;

/// <summary>
/// T5's span corruption (Raffel et al. 2020 §3.3.4; t5/data/preprocessors.py span_corruption): a row of L raw tokens is
/// split by <see cref="NoiseMask"/> (random_spans_noise_mask: noise density 15 %, mean span length 3) into n non-noise
/// and n noise spans, alternating and starting with non-noise. Span i's sentinel is id VocabTop − 1 − i, from the top
/// of the model's vocabulary (the tokenizer's plus <see cref="SentinelCount"/> = 100 sentinels, T5's extra_ids).
/// inputs  = nonnoise₀ S₀ nonnoise₁ S₁ … nonnoise_{n−1} S_{n−1} EOS  (noise_span_to_unique_sentinel, then EOS)
/// targets = S₀ noise₀ S₁ noise₁ … S_{n−1} noise_{n−1} EOS           (nonnoise_span_to_unique_sentinel, then EOS)
/// Encoder-decoder: EncoderInputs = inputs [B, Te], decoder Inputs = targets shifted right by the decoder start (pad),
/// Targets = targets [B, Td]. Decoder-only (GLM's blank infilling, Du et al. 2022): one row [inputs ; targets] with
/// PrefixLengths = Te (the corrupted text seen bidirectionally) and the loss only on the infilled part, which is
/// predicted autoregressively. L is chosen as T5's random_spans_helper does, so every length is fixed.
/// The byte tokenizer reuses T5's ids pad = 0 and EOS = 1 (NUL and SOH, which text does not contain); a tokenizer
/// with an end-of-text id uses it for both.
/// </summary>
public sealed class SpanCorruption : Objective
{
    public const double NoiseDensity = 0.15;
    public const double MeanNoiseSpanLength = 3.0;
    /// <summary>Sentinel ids reserved at the top of the vocabulary: T5's 100 extra ids.</summary>
    public const int SentinelCount = 100;

    /// <summary>The model's vocabulary size: the tokenizer's plus the sentinels; span i's sentinel is VocabTop − 1 − i.</summary>
    public int VocabTop { get; }
    public int Pad { get; }
    public int Eos { get; }
    /// <summary>L: raw tokens per row.</summary>
    public int TokensLength { get; }
    /// <summary>n: noise spans per row (the same for every row of length L).</summary>
    public int Spans { get; }
    /// <summary>|inputs| = L − noise + n + 1 (the encoder's time Te, or the decoder-only prefix).</summary>
    public int InputsLength { get; }
    /// <summary>|targets| = noise + n + 1 (the decoder's time Td).</summary>
    public int TargetsLength { get; }
    public override bool EncoderDecoder { get; }

    /// <param name="seq">Encoder-decoder: the encoder's time (inputs ≤ it, as T5's inputs_length); decoder-only: T,
    /// the whole row of inputs and targets (padded with at most 2 ignored pads where no L fits exactly).</param>
    /// <param name="sentinelsInVocabulary">The tokenizer's own top 100 ids are the sentinels (T5's spiece.model with its
    /// extra_ids), so the model's vocabulary is the tokenizer's; otherwise 100 ids are added above it.</param>
    public SpanCorruption(int seq, bool encoderDecoder, int tokenizerVocab, int pad, int eos, bool sentinelsInVocabulary = false) : base(seq)
    {
        EncoderDecoder = encoderDecoder;
        _added = sentinelsInVocabulary ? 0 : SentinelCount;
        VocabTop = tokenizerVocab + _added;
        if (sentinelsInVocabulary && tokenizerVocab < SentinelCount + 2)
            throw new ArgumentOutOfRangeException($"a vocabulary of {tokenizerVocab} ids cannot hold {SentinelCount} sentinels besides pad and EOS", innerException: null);
        Pad = pad; Eos = eos;
        if (pad < 0 || pad >= tokenizerVocab || eos < 0 || eos >= tokenizerVocab)
            throw new ArgumentOutOfRangeException($"pad {pad} and EOS {eos} must be tokenizer ids in [0, {tokenizerVocab})", innerException: null);
        if (encoderDecoder)
            TokensLength = RandomSpansHelper(seq).TokensLength;
        else
        {
            // the largest L whose row [inputs ; targets] = L + 2n + 2 tokens fits the T + 1 a row of T positions reads
            int l = 1;
            while (RowLength(l + 1) <= seq + 1) l++;
            if (RowLength(l) > seq + 1)
                throw new ArgumentOutOfRangeException($"span corruption on a decoder needs T ≥ {RowLength(2) - 1}, got T = {seq}", innerException: null);
            TokensLength = l;
        }
        (int noise, Spans) = NoiseCounts(TokensLength);
        InputsLength = TokensLength - noise + Spans + 1;
        TargetsLength = noise + Spans + 1;
        if (TokensLength < 2)
            throw new ArgumentOutOfRangeException($"span corruption needs at least 2 raw tokens per row (one noise, one not); T = {seq} gives {TokensLength}", innerException: null);
        if (Spans > SentinelCount)
            throw new ArgumentOutOfRangeException($"T = {seq} makes {Spans} noise spans per row, more than the {SentinelCount} sentinels", innerException: null);
    }

    static int RowLength(int l) { var (noise, spans) = NoiseCounts(l); return (l - noise + spans + 1) + (noise + spans + 1); }

    /// <summary>The objective for a tokenizer: the byte tokenizer reuses T5's pad = 0 and EOS = 1; others need an
    /// end-of-text id, used as both.</summary>
    public static SpanCorruption For(int seq, bool encoderDecoder, ITokenizer tokenizer)
    {
        if (tokenizer is ByteTokenizer) return new SpanCorruption(seq, encoderDecoder, tokenizer.VocabSize, pad: 0, eos: 1);
        if (tokenizer is SentencePieceFileTokenizer { ExtraIds: >= SentinelCount } t5)   // T5's own spiece: pad 0, eos 1, <extra_id_N> on top
            return new SpanCorruption(seq, encoderDecoder, t5.VocabSize, pad: 0, eos: t5.EndOfText ?? 1, sentinelsInVocabulary: true);
        int eos = tokenizer.EndOfText ?? throw new ArgumentException($"span corruption needs an end-of-sequence id, and tokenizer {tokenizer.Name} has none");
        return new SpanCorruption(seq, encoderDecoder, tokenizer.VocabSize, pad: eos, eos: eos);
    }

    public override string Name => "span";
    public override int RawLength => TokensLength;
    public override int Sentinels => _added;
    private readonly int _added;   // ids added above the tokenizer's: 100, or 0 when its own top ids are the sentinels
    public override bool NeedsPrefixVisibility => !EncoderDecoder;
    protected override string Summary => EncoderDecoder
        ? $"T5 span corruption: {TokensLength} tokens → encoder {InputsLength}, decoder {TargetsLength}, {Spans} spans"
        : $"GLM blank infilling: {TokensLength} tokens → prefix {InputsLength} (bidirectional) + {TargetsLength} infilled, {Spans} spans";

    /// <summary>Span i's sentinel id.</summary>
    public int Sentinel(int span) => VocabTop - 1 - span;

    // ---- T5's arithmetic ----------------------------------------------------------------------------------------------

    /// <summary>random_spans_noise_mask's counts: noise = round(L·density) clipped to [1, L − 1] (in float32, as TF),
    /// n = max(round(noise / mean span), 1); tf.round rounds half to even, as Math.Round does.</summary>
    public static (int Noise, int Spans) NoiseCounts(int length)
    {
        int l = Math.Max(length, 2);  // T5: "increase length to avoid degeneracy"
        int noise = (int)MathF.Round(l * (float)NoiseDensity);
        noise = Math.Min(Math.Max(noise, 1), l - 1);
        int spans = Math.Max((int)MathF.Round(noise / (float)MeanNoiseSpanLength), 1);
        return (noise, spans);
    }

    /// <summary>T5's random_spans_helper (extra tokens per span 1 in inputs and targets): the largest raw length L whose
    /// inputs (non-noise + one sentinel per span + EOS) fit <paramref name="inputsLength"/>, and its inputs and targets
    /// lengths. Counted with <see cref="NoiseCounts"/> (the mask's own clipped float32 counts), so the lengths are
    /// exactly those the mask makes. T5's own helper counts in double precision and without the clipping, so it differs
    /// from its mask below 10 and where L·0.15 is a midpoint in one precision only (inputs 172, 316, 352, …; there T5
    /// pads or cuts); elsewhere the two agree (a test checks).</summary>
    public static (int TokensLength, int InputsLength, int TargetsLength) RandomSpansHelper(int inputsLength)
    {
        static (int Inputs, int Targets) Lengths(int l)
        {
            var (noise, spans) = NoiseCounts(l);
            return (l - noise + spans + 1, noise + spans + 1);
        }
        int tokens = inputsLength - 1;
        while (Lengths(tokens + 1).Inputs <= inputsLength) tokens++;
        var (inputs, targets) = Lengths(tokens);
        return (tokens, inputs, targets);
    }

    /// <summary>T5's helper itself, in double precision with Python's round and no clipping: what a test compares against.</summary>
    public static (int TokensLength, int InputsLength, int TargetsLength) T5RandomSpansHelper(int inputsLength)
    {
        static (int, int) Lengths(int l)
        {
            int noise = (int)Math.Round(l * NoiseDensity, MidpointRounding.ToEven);
            int spans = (int)Math.Round(noise / MeanNoiseSpanLength, MidpointRounding.ToEven);
            return (l - noise + spans + 1, noise + spans + 1);
        }
        int tokens = inputsLength - 1;
        while (Lengths(tokens + 1).Item1 <= inputsLength) tokens++;
        var (inputs, targets) = Lengths(tokens);
        return (tokens, inputs, targets);
    }

    /// <summary>_random_segmentation: partitions <paramref name="items"/> into <paramref name="segments"/> non-empty
    /// segments. first_in_segment = [0] ++ shuffle([i &lt; segments − 1 for i in range(items − 1)]), segment ids are its
    /// cumulative sum, and the lengths count each id. The shuffle is given as a permutation of [0, items − 1):
    /// shuffled[i] = flags[permutation[i]].</summary>
    public static int[] RandomSegmentation(int items, int segments, ReadOnlySpan<int> permutation)
    {
        if (segments < 1 || segments > items)
            throw new ArgumentOutOfRangeException($"a segmentation of {items} items into {segments} non-empty segments needs 1 ≤ segments ≤ items", innerException: null);
        if (permutation.Length != items - 1)
            throw new ArgumentException($"the shuffle of {items - 1} flags needs a permutation of {items - 1}, got {permutation.Length}");
        var lengths = new int[segments];
        int id = 0;
        lengths[0] = 1;
        for (int i = 0; i < items - 1; i++)
        {
            if (permutation[i] < segments - 1) id++;  // flags[p] = p < segments − 1
            lengths[id]++;
        }
        return lengths;
    }

    /// <summary>A uniform permutation of [0, n) by Fisher–Yates (the stateless_shuffle of T5's segmentation).</summary>
    public static int[] Permutation(int n, Common.Rng rng)
    {
        var p = new int[Math.Max(n, 0)];
        for (int i = 0; i < p.Length; i++) p[i] = i;
        for (int i = p.Length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }

    /// <summary>random_spans_noise_mask of a row of <paramref name="length"/>: the noise spans' lengths from one
    /// segmentation, the non-noise spans' from another (the same number n of each), interleaved non-noise first;
    /// true marks noise.</summary>
    public static bool[] NoiseMask(int length, Common.Rng rng)
    {
        var (noise, spans) = NoiseCounts(length);
        int l = Math.Max(length, 2);
        var noisePermutation = Permutation(noise - 1, rng);
        var nonNoisePermutation = Permutation(l - noise - 1, rng);
        return NoiseMask(length, noisePermutation, nonNoisePermutation);
    }

    /// <summary>The mask for given shuffles of the noise flags and the non-noise flags (T5's seeds[0] and seeds[1]).</summary>
    public static bool[] NoiseMask(int length, ReadOnlySpan<int> noisePermutation, ReadOnlySpan<int> nonNoisePermutation)
    {
        var (noise, spans) = NoiseCounts(length);
        int l = Math.Max(length, 2);
        var noiseLengths = RandomSegmentation(noise, spans, noisePermutation);
        var nonNoiseLengths = RandomSegmentation(l - noise, spans, nonNoisePermutation);
        var mask = new bool[l];
        int at = 0;
        for (int s = 0; s < spans; s++)
        {
            at += nonNoiseLengths[s];
            for (int k = 0; k < noiseLengths[s]; k++) mask[at++] = true;
        }
        return mask[..length];
    }

    /// <summary>(inputs, targets) of one raw row under <paramref name="mask"/>: T5's noise_span_to_unique_sentinel and
    /// nonnoise_span_to_unique_sentinel, each with EOS appended.</summary>
    public (int[] Inputs, int[] Targets) Corrupt(ReadOnlySpan<int> row, ReadOnlySpan<bool> mask)
    {
        var inputs = new List<int>(InputsLength);
        var targets = new List<int>(TargetsLength);
        int span = -1;
        for (int i = 0; i < row.Length; i++)
        {
            bool first = mask[i] && (i == 0 || !mask[i - 1]);
            if (first) { span++; inputs.Add(Sentinel(span)); targets.Add(Sentinel(span)); }
            (mask[i] ? targets : inputs).Add(row[i]);
        }
        inputs.Add(Eos);
        targets.Add(Eos);
        return ([.. inputs], [.. targets]);
    }

    protected override TokenBatch Transform(TokenBatch raw, ulong seed, long draw)
    {
        int B = raw.B;
        var rows = new (int[] Inputs, int[] Targets)[B];
        for (int b = 0; b < B; b++)
        {
            var row = RawRow(raw, b);
            var mask = NoiseMask(row.Length, RowRng(seed, draw, b));
            rows[b] = Corrupt(row, mask);
            if (rows[b].Inputs.Length != InputsLength || rows[b].Targets.Length != TargetsLength)
                throw new InvalidOperationException($"span corruption of {row.Length} tokens gave {rows[b].Inputs.Length} inputs and {rows[b].Targets.Length} targets, not {InputsLength} and {TargetsLength}");
        }
        if (EncoderDecoder)
        {
            int Te = InputsLength, Td = TargetsLength;
            var encoder = new int[B * Te];   // [B, Te]
            var decoder = new int[B * Td];   // [B, Td]: targets shifted right by the decoder start
            var targets = new int[B * Td];   // [B, Td]
            for (int b = 0; b < B; b++)
            {
                rows[b].Inputs.CopyTo(encoder, b * Te);
                rows[b].Targets.CopyTo(targets, b * Td);
                decoder[b * Td] = Pad;       // T5's decoder_start_token_id = pad_token_id
                Array.Copy(rows[b].Targets, 0, decoder, b * Td + 1, Td - 1);
            }
            return new TokenBatch(decoder, targets, B, Td) { EncoderInputs = encoder, EncoderLength = Te };
        }
        int T = Seq, P = InputsLength, used = InputsLength + TargetsLength;  // used ≤ T + 1
        var ids = new int[B * T];
        var next = new int[B * T];
        var prefix = new int[B];
        for (int b = 0; b < B; b++)
        {
            var full = new int[T + 1];
            Array.Fill(full, Pad);
            rows[b].Inputs.CopyTo(full, 0);
            rows[b].Targets.CopyTo(full, P);
            for (int t = 0; t < T; t++)
            {
                ids[b * T + t] = full[t];
                // the loss covers the infilled part only: targets full[P..used), i.e. positions P − 1 … used − 2
                next[b * T + t] = t >= P - 1 && t + 1 < used ? full[t + 1] : Trainer.IgnoreIndex;
            }
            prefix[b] = P;
        }
        return new TokenBatch(ids, next, B, T) { PrefixLengths = prefix };
    }

    protected override string? Special(int id) =>
        id >= VocabTop - SentinelCount && id < VocabTop ? $"<extra_id_{VocabTop - 1 - id}>"
        : id == Eos ? "</s>" : id == Pad ? "<pad>" : null;

    public override string Describe(TokenBatch batch, ITokenizer tokenizer)
    {
        if (batch.EncoderInputs is null) return base.Describe(batch, tokenizer);
        var sb = new StringBuilder();
        sb.Append($"objective {Name}: {Summary}; row 0 of the first batch\n");
        sb.Append($"  encoder  {Show(batch.EncoderInputs.AsSpan(0, batch.EncoderLength), tokenizer)}\n");
        sb.Append($"  decoder  {Show(batch.Inputs.AsSpan(0, batch.T), tokenizer)}\n");
        sb.Append($"  target   {ShowTargets(batch.Targets.AsSpan(0, batch.T), tokenizer)}");
        return sb.ToString();
    }
}
