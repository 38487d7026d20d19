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

    public SentencePieceFileTokenizer(string path)
    {
        Name = path;
        var config = TokenizerConfig.Read(Path.GetDirectoryName(Path.GetFullPath(path))!);
        bool t5 = string.Equals(Path.GetFileName(path), Tokenizers.T5SentencePieceFile, StringComparison.Ordinal);
        _addBos = config.AddBos ?? !t5;
        _addEos = config.AddEos ?? t5;
        _extraIds = t5 ? config.ExtraIds ?? 100 : 0;
        try
        {
            using var stream = File.OpenRead(path);
            _sp = SentencePieceTokenizer.Create(stream, _addBos, _addEos);
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
        BeginOfText = Id(config.BosToken, "bos_token", _sp.BeginningOfSentenceId);
        EndOfText = Id(config.EosToken, "eos_token", _sp.EndOfSentenceId);
        if (_addBos && BeginOfText is null) throw new InvalidDataException($"{path}: BOS is to be prepended but the model has no bos piece");
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
