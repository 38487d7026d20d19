// B batch rows, T the model's time, R raw tokens per row (what the dataset serves: R − 1 inputs and the token after)
using System.Text;
using Llm.Text;

namespace Llm.Training.Objectives;

/// <summary>
/// A pretraining objective: a data transformation of the dataset's raw token rows plus a loss mask (targets set to
/// <see cref="Trainer.IgnoreIndex"/>), into the <see cref="TokenBatch"/> the model trains on. Every random choice is
/// drawn from (run seed, draw index) alone — counter-based — so only the dataset's position needs saving and a resumed
/// run rebuilds the same batches; training draw i is step·accumulation + micro-batch, validation batch i is always
/// <see cref="ValidationDraw"/>(i), so the validation loss is comparable across steps.
/// </summary>
public abstract class Objective
{
    public static IReadOnlyList<string> Names { get; } = ["causal", "prefix", "span"];
    public const string Default = "causal";

    /// <summary>"causal", "prefix" or "span".</summary>
    public abstract string Name { get; }
    /// <summary>T: the sequence length the objective was built for (the decoder's, or the encoder's for an encoder-decoder).</summary>
    public int Seq { get; }
    /// <summary>R: tokens of text each row consumes; the dataset serves rows of R − 1 inputs and the token after them.</summary>
    public abstract int RawLength { get; }
    /// <summary>Ids reserved at the top of the model's vocabulary (span corruption's sentinels); the model's vocabulary
    /// is the tokenizer's plus these.</summary>
    public virtual int Sentinels => 0;
    /// <summary>The decoder must see a prefix bidirectionally (<see cref="Models.Visibility.Prefix"/>).</summary>
    public virtual bool NeedsPrefixVisibility => false;
    /// <summary>The batches carry encoder inputs: the model must be an encoder-decoder.</summary>
    public virtual bool EncoderDecoder => false;

    protected Objective(int seq)
    {
        if (seq < 1) throw new ArgumentOutOfRangeException($"the sequence length T must be ≥ 1, got {seq}", innerException: null);
        Seq = seq;
    }

    /// <summary>The model's batch for the dataset's <paramref name="raw"/> batch [B, R − 1], deterministic in
    /// (<paramref name="seed"/>, <paramref name="draw"/>).</summary>
    public TokenBatch Apply(TokenBatch raw, ulong seed, long draw)
    {
        if (raw.T != RawLength - 1)
            throw new ArgumentException($"objective {Name} at T = {Seq} takes rows of R − 1 = {RawLength - 1} inputs (R = {RawLength} raw tokens), got T = {raw.T}");
        return Transform(raw, seed, draw);
    }

    protected abstract TokenBatch Transform(TokenBatch raw, ulong seed, long draw);

    /// <summary>The draw of validation batch <paramref name="index"/>: negative, so never a training draw.</summary>
    public static long ValidationDraw(int index) => -1L - index;

    /// <summary>The generator of row <paramref name="row"/> of draw <paramref name="draw"/>: SplitMix64 seeded by a hash
    /// of (seed, draw, row), so any batch can be rebuilt on its own.</summary>
    protected static Common.Rng RowRng(ulong seed, long draw, int row) => new(Mix(Mix(Mix(seed) ^ (ulong)draw) ^ (ulong)row));

    /// <summary>SplitMix64's finaliser (a bijection of 64 bits that mixes every input bit into every output bit).</summary>
    internal static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Raw row b: its R − 1 inputs and the last target (the token after them).</summary>
    protected static int[] RawRow(TokenBatch raw, int b)
    {
        int t = raw.T;
        var row = new int[t + 1];
        raw.Inputs.AsSpan(b * t, t).CopyTo(row);
        row[t] = raw.Targets[b * t + t - 1];
        return row;
    }

    /// <summary>The objective for a run: <paramref name="name"/> at T = <paramref name="seq"/>, for an encoder-decoder
    /// model or a decoder, with the tokenizer whose vocabulary the sentinels go above.</summary>
    public static Objective Create(string name, int seq, bool encoderDecoder, ITokenizer tokenizer)
    {
        string n = (name ?? throw new ArgumentNullException(nameof(name))).Trim().ToLowerInvariant();
        if (encoderDecoder && n != "span")
            throw new ArgumentException($"--objective {name} needs a decoder; an encoder-decoder preset trains with --objective span");
        return n switch
        {
            "causal" => new CausalObjective(seq),
            "prefix" => new PrefixObjective(seq),
            "span" => SpanCorruption.For(seq, encoderDecoder, tokenizer),
            _ => throw new ArgumentException($"unknown objective '{name}'; known: {string.Join(", ", Names)}"),
        };
    }

    // ---- the sample `train` prints ------------------------------------------------------------------------------------

    /// <summary>A short human-readable view of row 0 of <paramref name="batch"/>: what the model reads, where its
    /// prefix ends, and what its loss covers.</summary>
    public virtual string Describe(TokenBatch batch, ITokenizer tokenizer)
    {
        int T = batch.T;
        var inputs = batch.Inputs.AsSpan(0, T);
        var targets = batch.Targets.AsSpan(0, T);
        int prefix = batch.PrefixLengths?[0] ?? 0;
        var sb = new StringBuilder();
        sb.Append($"objective {Name}: {Summary}; row 0 of the first batch (T = {T})\n");
        if (prefix > 0)
            sb.Append($"  input   {Show(inputs[..prefix], tokenizer)} ‖ {Show(inputs[prefix..], tokenizer)}   (‖ ends the bidirectional prefix of {prefix})\n");
        else sb.Append($"  input   {Show(inputs, tokenizer)}\n");
        sb.Append($"  target  {ShowTargets(targets, tokenizer)}");
        return sb.ToString();
    }

    /// <summary>One line saying what the objective is.</summary>
    protected abstract string Summary { get; }

    /// <summary>Text of a row's targets, a run of ignored ones shown as [ignored ×n].</summary>
    protected string ShowTargets(ReadOnlySpan<int> targets, ITokenizer tokenizer)
    {
        var parts = new List<string>();
        int i = 0;
        while (i < targets.Length)
        {
            int j = i;
            bool ignored = targets[i] == Trainer.IgnoreIndex;
            while (j < targets.Length && (targets[j] == Trainer.IgnoreIndex) == ignored) j++;
            parts.Add(ignored ? $"[ignored ×{j - i}]" : Show(targets[i..j], tokenizer));
            i = j;
        }
        return string.Join(" ", parts);
    }

    /// <summary>Longest quoted text shown per piece; longer is cut with "…".</summary>
    protected const int MaxShown = 120;

    /// <summary>Quoted text of ids: runs of ordinary ids decoded by the tokenizer, special ids by <see cref="Special"/>,
    /// control characters escaped.</summary>
    protected string Show(ReadOnlySpan<int> ids, ITokenizer tokenizer)
    {
        var sb = new StringBuilder();
        int i = 0;
        while (i < ids.Length)
        {
            if (Special(ids[i]) is { } s) { sb.Append(s); i++; continue; }
            int j = i;
            while (j < ids.Length && Special(ids[j]) is null) j++;
            foreach (char c in tokenizer.Decode(ids[i..j]))
                sb.Append(c switch { '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", _ when char.IsControl(c) => $"\\x{(int)c:x2}", _ => c.ToString() });
            i = j;
        }
        string text = sb.ToString();
        return "\"" + (text.Length > MaxShown ? text[..MaxShown] + "…" : text) + "\"";
    }

    /// <summary>How a special id reads (a sentinel as &lt;extra_id_i&gt;), or null for an ordinary one.</summary>
    protected virtual string? Special(int id) => null;
}
