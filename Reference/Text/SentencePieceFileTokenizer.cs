using Microsoft.ML.Tokenizers;

namespace Llm.Text;

/// <summary>
/// A SentencePiece tokenizer.model (LLaMA's, Mistral's: BPE with byte fallback; a Unigram model loads too), read by
/// Microsoft.ML.Tokenizers' SentencePieceTokenizer. BOS is prepended unless tokenizer_config.json's add_bos_token is
/// false and EOS appended only when add_eos_token is true: transformers' LlamaTokenizer defaults. The eos id is
/// tokenizer_config.json's eos_token when it names one, else the model's own eos_id.
/// </summary>
public sealed class SentencePieceFileTokenizer : ITokenizer
{
    private readonly SentencePieceTokenizer _sp;
    private readonly bool _addBos, _addEos;

    public string Name { get; }
    public int VocabSize { get; }
    public int? EndOfText { get; }
    public int? BeginOfText { get; }

    public SentencePieceFileTokenizer(string path)
    {
        Name = path;
        var config = TokenizerConfig.Read(Path.GetDirectoryName(Path.GetFullPath(path))!);
        _addBos = config.AddBos ?? true;
        _addEos = config.AddEos ?? false;
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
        VocabSize = _sp.Vocabulary.Count == 0 ? 0 : _sp.Vocabulary.Values.Max() + 1;
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
        var ids = _sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false).ToList();
        // prepended here rather than by the library so that the configured ids (eos_token may differ from eos_id) are used
        if (_addBos) ids.Insert(0, BeginOfText!.Value);
        if (_addEos && EndOfText is { } eos) ids.Add(eos);
        return [.. ids];
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        Tokenizers.CheckIds(ids, VocabSize, Name);
        return _sp.Decode(ids.ToArray()) ?? "";
    }
}
