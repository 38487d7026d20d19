using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Llm.Text;

/// <summary>
/// A SentencePiece tokenizer.model (LLaMA's, Mistral's: BPE with byte fallback; a Unigram model loads too), read by
/// Microsoft.ML.Tokenizers' SentencePieceTokenizer. BOS is prepended unless tokenizer_config.json's add_bos_token is
/// false and EOS appended only when add_eos_token is true: transformers' LlamaTokenizer defaults. The eos id is
/// tokenizer_config.json's eos_token when it names one, else the model's own eos_id.
/// A file named spiece.model is T5's (a Unigram model with pad 0, eos 1, unk 2 and no bos) and takes T5Tokenizer's
/// conventions instead: no BOS, EOS appended, and tokenizer_config.json's extra_ids (default 100) sentinels
/// &lt;extra_id_N&gt; above the pieces, at id pieces + extra_ids − 1 − N (so &lt;extra_id_0&gt; is the top id); text
/// is split at each sentinel's literal and the pieces between are encoded on their own, as T5Tokenizer's added tokens.
/// </summary>
public sealed class SentencePieceFileTokenizer : ITokenizer
{
    private readonly SentencePieceTokenizer _sp;
    private readonly bool _addBos, _addEos;
    private readonly int _pieces, _extraIds;   // SentencePiece's own ids [0, _pieces), then the sentinels
    private static readonly Regex Sentinel = new(@"<extra_id_(\d{1,9})>", RegexOptions.CultureInvariant);

    public string Name { get; }
    public int VocabSize { get; }
    public int? EndOfText { get; }
    public int? BeginOfText { get; }
    /// <summary>T5's sentinels &lt;extra_id_N&gt; at the top of the vocabulary (0 for other SentencePiece files).</summary>
    public int ExtraIds => _extraIds;

    public SentencePieceFileTokenizer(string path)
    {
        Name = path;
        var config = TokenizerConfig.Read(Path.GetDirectoryName(Path.GetFullPath(path))!);
        bool t5 = string.Equals(Path.GetFileName(path), Tokenizers.T5SentencePieceFile, StringComparison.Ordinal);
        _addBos = config.AddBos ?? !t5;
        _addEos = config.AddEos ?? t5;
        _extraIds = t5 ? config.ExtraIds ?? 100 : 0;
        byte[] model = File.ReadAllBytes(path);
        bool noBos = false;
        try
        {
            (model, noBos) = WithBosAlias(model);
            _sp = SentencePieceTokenizer.Create(new MemoryStream(model, writable: false), _addBos, _addEos);
        }
        catch (Exception e) when (e is not IOException and not UnauthorizedAccessException)
        {
            // the protobuf parser's and the model checks' own exceptions say nothing of the file
            throw new InvalidDataException($"{path}: not a SentencePiece model Microsoft.ML.Tokenizers can read ({e.Message})", e);
        }
        _pieces = _sp.Vocabulary.Count == 0 ? 0 : _sp.Vocabulary.Values.Max() + 1;
        VocabSize = _pieces + _extraIds;
        int? Id(string? token, string field, int fallback) => token is null ? (fallback >= 0 ? fallback : null)
            : _sp.Vocabulary.TryGetValue(token, out int id) ? id
            : throw new InvalidDataException($"{path}: tokenizer_config.json's {field} \"{token}\" is not a piece of the model");
        BeginOfText = Id(config.BosToken, "bos_token", noBos ? -1 : _sp.BeginningOfSentenceId);
        EndOfText = Id(config.EosToken, "eos_token", _sp.EndOfSentenceId);
        if (_addBos && BeginOfText is null) throw new InvalidDataException($"{path}: BOS is to be prepended but the model has no bos piece");
    }

    /// <summary>
    /// Microsoft.ML.Tokenizers 2.0.1 cannot read a Unigram model without a bos piece (trainer_spec.bos_id −1, as T5's
    /// spiece.model has): its SentencePieceUnigramModel indexes its piece table at bos_id and throws
    /// IndexOutOfRangeException. Such a model gets a second trainer_spec appended that names the eos piece (else the
    /// unk piece) as bos: protobuf merges repeated embedded messages field by field, later scalars winning, so only
    /// bos_id and bos_piece change, to a piece that is a control (or unknown) piece already, which the segmentation
    /// never produces. The alias is never prepended (BeginOfText stays null unless tokenizer_config.json names one).
    /// </summary>
    private static (byte[] Model, bool NoBos) WithBosAlias(byte[] model)
    {
        var trainer = Proto.Fields(model).Where(f => f.Number == 2 && f.Wire == 2).Select(f => model.AsMemory(f.Start, f.Length)).ToList();
        // proto2 defaults of sentencepiece_model.proto's TrainerSpec
        long unk = 0, bos = 1, eos = 2;
        string unkPiece = "<unk>", eosPiece = "</s>";
        foreach (var t in trainer)
            foreach (var f in Proto.Fields(t.Span))
            {
                var span = t.Span;
                switch (f.Number, f.Wire)
                {
                    case (40, 0): unk = f.Value; break;
                    case (41, 0): bos = f.Value; break;
                    case (42, 0): eos = f.Value; break;
                    case (45, 2): unkPiece = System.Text.Encoding.UTF8.GetString(span.Slice(f.Start, f.Length)); break;
                    case (47, 2): eosPiece = System.Text.Encoding.UTF8.GetString(span.Slice(f.Start, f.Length)); break;
                }
            }
        if (bos >= 0) return (model, false);
        var (id, piece) = eos >= 0 ? (eos, eosPiece) : (unk, unkPiece);
        var patch = new List<byte>();
        Proto.Varint(patch, 41 << 3 | 0); Proto.Varint(patch, (ulong)id);
        byte[] text = System.Text.Encoding.UTF8.GetBytes(piece);
        Proto.Varint(patch, 46 << 3 | 2); Proto.Varint(patch, (ulong)text.Length); patch.AddRange(text);
        var appended = new List<byte>(model);
        Proto.Varint(appended, 2 << 3 | 2); Proto.Varint(appended, (ulong)patch.Count); appended.AddRange(patch);
        return ([.. appended], true);
    }

    /// <summary>Just enough of the protobuf wire format to find a message's fields.</summary>
    private static class Proto
    {
        /// <summary>(number, wire type, varint value, start and length of a length-delimited payload) of each field.</summary>
        public static List<(int Number, int Wire, long Value, int Start, int Length)> Fields(ReadOnlySpan<byte> data)
        {
            var fields = new List<(int, int, long, int, int)>();
            int i = 0;
            while (i < data.Length)
            {
                ulong key = Read(data, ref i);
                int number = (int)(key >> 3), wire = (int)(key & 7);
                switch (wire)
                {
                    case 0: fields.Add((number, wire, (long)Read(data, ref i), 0, 0)); break;
                    case 1: i += 8; break;
                    case 5: i += 4; break;
                    case 2:
                        ulong length = Read(data, ref i);
                        if (length > (ulong)(data.Length - i)) throw new InvalidDataException($"protobuf field {number} runs past the end of the data");
                        fields.Add((number, wire, 0, i, (int)length));
                        i += (int)length;
                        break;
                    default: throw new InvalidDataException($"protobuf field {number} has wire type {wire}, which SentencePiece models do not use");
                }
            }
            if (i > data.Length) throw new InvalidDataException("the protobuf data ends inside a field");
            return fields;
        }

        private static ulong Read(ReadOnlySpan<byte> data, ref int i)
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (i >= data.Length) throw new InvalidDataException("the protobuf data ends inside a varint");
                byte b = data[i++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return value;
            }
            throw new InvalidDataException("a protobuf varint longer than 10 bytes");
        }

        public static void Varint(List<byte> output, ulong value)
        {
            do
            {
                byte b = (byte)(value & 0x7F);
                value >>= 7;
                output.Add(value != 0 ? (byte)(b | 0x80) : b);
            } while (value != 0);
        }
    }

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        int start = 0;
        if (_extraIds > 0)
            foreach (Match m in Sentinel.Matches(text))
            {
                if (!int.TryParse(m.Groups[1].ValueSpan, out int n) || n >= _extraIds) continue;   // not a sentinel of this vocabulary: plain text
                ids.AddRange(Pieces(text[start..m.Index]));
                ids.Add(_pieces + _extraIds - 1 - n);
                start = m.Index + m.Length;
            }
        ids.AddRange(Pieces(text[start..]));
        // prepended here rather than by the library so that the configured ids (eos_token may differ from eos_id) are used
        if (_addBos) ids.Insert(0, BeginOfText!.Value);
        if (_addEos && EndOfText is { } eos) ids.Add(eos);
        return [.. ids];
    }

    private IEnumerable<int> Pieces(string text) =>
        text.Length == 0 ? [] : _sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);

    public string Decode(ReadOnlySpan<int> ids)
    {
        Tokenizers.CheckIds(ids, VocabSize, Name);
        if (_extraIds == 0) return _sp.Decode(ids.ToArray()) ?? "";
        var text = new System.Text.StringBuilder();
        int run = 0;   // the start of the current run of SentencePiece ids
        for (int i = 0; i <= ids.Length; i++)
        {
            if (i < ids.Length && ids[i] < _pieces) continue;
            if (i > run) text.Append(_sp.Decode(ids[run..i].ToArray()));
            if (i < ids.Length) text.Append($"<extra_id_{VocabSize - 1 - ids[i]}>");
            run = i + 1;
        }
        return text.ToString();
    }
}
