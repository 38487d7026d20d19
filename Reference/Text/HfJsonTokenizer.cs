using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Llm.Text;

/// <summary>
/// A Hugging Face tokenizer.json of the byte-level BPE kind (GPT-2, GPT-NeoX, BLOOM, and Llama-3-style files).
/// <para>Supported, with the tokenizers library's semantics: model.type "BPE" with model.vocab, model.merges (as "a b"
/// strings or ["a", "b"] pairs), model.ignore_merges; normalizer null or NFC (NFC only as far as .NET's invariant
/// globalization mode normalizes: text already in NFC, nearly all text, is exact; decomposed characters stay so); pre_tokenizer ByteLevel (use_regex: the
/// GPT-2 split) alone or in a Sequence after Split steps (a Regex or String pattern, behavior "Isolated", not
/// inverted — BLOOM's and Llama 3's); decoder null or ByteLevel; added_tokens matched leftmost-longest in the raw text
/// before anything else. BOS/EOS follow tokenizer_config.json (add_bos_token, add_eos_token, default false as in
/// transformers' byte-level tokenizers), or, where it says nothing, the special tokens that a TemplateProcessing
/// post_processor puts around a single sequence.</para>
/// <para>Refused, naming the field: any other model.type (Unigram, WordLevel, WordPiece), model.byte_fallback,
/// dropout, continuing_subword_prefix or end_of_word_suffix (SentencePiece-style BPE such as LLaMA's tokenizer.json:
/// use its tokenizer.model), other normalizers and pre-tokenizers, ByteLevel's add_prefix_space, and added tokens
/// with lstrip, rstrip or single_word.</para>
/// <para>Why not Microsoft.ML.Tokenizers' BpeTokenizer: its pre-tokenizers keep only regex matches, while a Split
/// with behavior "Isolated" keeps the text between matches too (BLOOM's pattern matches words, not the spaces and
/// punctuation between them), and added tokens must be cut out before pre-tokenization as the tokenizers library
/// does. The BPE itself is GPT-2's: merge the lowest-ranked adjacent pair, everywhere in the word, until none is
/// left. One known difference from the Rust library: .NET regexes see UTF-16, so a letter outside the BMP is not
/// \p{L} in the split patterns (it still encodes, as bytes, only perhaps split differently).</para>
/// </summary>
public sealed class HfJsonTokenizer : ITokenizer
{
    /// <summary>ByteLevel's split (tokenizers' pre_tokenizers/byte_level.rs).</summary>
    private static readonly Regex Gpt2Split = new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant | RegexOptions.Compiled);

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<(string, string), int> _ranks = [];
    private readonly bool _ignoreMerges;
    private bool _nfc;                              // set while reading the normalizer
    private readonly List<Regex> _splits = [];     // applied in order, each keeping matches and the gaps between
    private readonly Dictionary<char, List<(string Content, int Id)>> _added = [];   // by first char, longest first
    private readonly Dictionary<int, string> _addedById = [];
    private readonly string?[] _tokenById;
    private readonly int[] _prefix, _suffix;
    private readonly Dictionary<string, int[]> _cache = [];
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(p => p.c, p => (byte)p.b);
    private static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    public string Name { get; }
    public int VocabSize { get; }
    public int? EndOfText { get; }
    public int? BeginOfText { get; }

    public static HfJsonTokenizer Load(string path)
    {
        JsonNode root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path}: empty JSON"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e); }
        return new HfJsonTokenizer(root, path, TokenizerConfig.Read(Path.GetDirectoryName(Path.GetFullPath(path))!));
    }

    internal HfJsonTokenizer(JsonNode root, string path, TokenizerConfig config)
    {
        Name = path;
        var model = root["model"] as JsonObject ?? throw new InvalidDataException($"{path}: no \"model\" object");
        string type = Str(model, "type", path) ?? (model["merges"] is not null ? "BPE" : "(absent)");
        if (type != "BPE")
            throw new InvalidDataException($"{path}: model.type \"{type}\" is not supported: only byte-level \"BPE\" tokenizer.json files are (a SentencePiece tokenizer.model is read too)");
        if (model["byte_fallback"]?.GetValue<bool>() == true)
            throw new InvalidDataException($"{path}: model.byte_fallback is true: a SentencePiece-style BPE, not byte-level; use the folder's tokenizer.model");
        foreach (string field in new[] { "dropout", "continuing_subword_prefix", "end_of_word_suffix" })
            // GPT-2's own file has "" for the two affixes: empty means none
            if (model[field] is JsonValue v && v.GetValueKind() != JsonValueKind.Null && !(v.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Length == 0))
                throw new InvalidDataException($"{path}: model.{field} is set ({v.ToJsonString()}); only plain byte-level BPE is supported");
        _ignoreMerges = model["ignore_merges"]?.GetValue<bool>() == true;

        _vocab = [];
        var vocab = model["vocab"] as JsonObject ?? throw new InvalidDataException($"{path}: model.vocab is not an object");
        foreach (var (token, id) in vocab) _vocab[token] = id!.GetValue<int>();
        foreach (char c in ByteToChar)
            if (!_vocab.ContainsKey(c.ToString()))
                throw new InvalidDataException($"{path}: model.vocab lacks the byte-level symbol '{c}' (byte 0x{Array.IndexOf(ByteToChar, c):X2}): not a byte-level BPE vocabulary");

        var merges = model["merges"] as JsonArray ?? throw new InvalidDataException($"{path}: model.merges is not an array");
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var m = merges[rank];
            (string a, string b) pair = m switch
            {
                JsonArray { Count: 2 } arr => (arr[0]!.GetValue<string>(), arr[1]!.GetValue<string>()),
                JsonValue s when s.GetValueKind() == JsonValueKind.String && s.GetValue<string>().Split(' ') is [var x, var y] => (x, y),
                _ => throw new InvalidDataException($"{path}: model.merges[{rank}] is neither \"a b\" nor [\"a\", \"b\"]: {m?.ToJsonString()}"),
            };
            _ranks.TryAdd(pair, rank);   // a repeated merge keeps its first (best) rank
        }

        ReadNormalizer(root["normalizer"], path);
        ReadPreTokenizer(root["pre_tokenizer"], path, "pre_tokenizer");
        if (!_sawByteLevel)
            throw new InvalidDataException($"{path}: pre_tokenizer has no ByteLevel step: not a byte-level BPE");
        if (root["decoder"] is JsonObject dec && Str(dec, "type", path) is { } dt && dt != "ByteLevel")
            throw new InvalidDataException($"{path}: decoder.type \"{dt}\" is not supported (only ByteLevel)");

        int maxId = _vocab.Count == 0 ? -1 : _vocab.Values.Max();
        if (root["added_tokens"] is JsonArray added)
            foreach (var t in added.OfType<JsonObject>())
            {
                string content = Str(t, "content", path) ?? throw new InvalidDataException($"{path}: an added_tokens entry has no content");
                int id = t["id"]!.GetValue<int>();
                foreach (string flag in new[] { "lstrip", "rstrip", "single_word" })
                    if (t[flag]?.GetValue<bool>() == true)
                        throw new InvalidDataException($"{path}: added token \"{content}\" has {flag}: true, which is not supported");
                if (content.Length == 0) continue;
                _addedById[id] = content;
                if (!_added.TryGetValue(content[0], out var list)) _added[content[0]] = list = [];
                list.Add((content, id));
                maxId = Math.Max(maxId, id);
            }
        foreach (var list in _added.Values) list.Sort((x, y) => y.Content.Length.CompareTo(x.Content.Length));

        VocabSize = maxId + 1;
        _tokenById = new string?[VocabSize];
        foreach (var (token, id) in _vocab) _tokenById[id] = token;

        var addedIds = _addedById.ToDictionary(p => p.Value, p => p.Key);
        int? Lookup(string? token, string field) => token is null ? null
            : addedIds.TryGetValue(token, out int added) ? added
            : _vocab.TryGetValue(token, out int id) ? id
            : throw new InvalidDataException($"{path}: tokenizer_config.json's {field} \"{token}\" is not in the vocabulary");
        BeginOfText = Lookup(config.BosToken, "bos_token");
        EndOfText = Lookup(config.EosToken, "eos_token");

        var (templatePrefix, templateSuffix) = ReadTemplate(root["post_processor"], path);
        _prefix = config.AddBos is { } addBos
            ? addBos ? [BeginOfText ?? throw new InvalidDataException($"{path}: add_bos_token is true but tokenizer_config.json names no bos_token")] : []
            : templatePrefix;
        _suffix = config.AddEos is { } addEos
            ? addEos ? [EndOfText ?? throw new InvalidDataException($"{path}: add_eos_token is true but tokenizer_config.json names no eos_token")] : []
            : templateSuffix;
        if (BeginOfText is null && templatePrefix.Length > 0) BeginOfText = templatePrefix[0];
    }

    private bool _sawByteLevel;

    private void ReadNormalizer(JsonNode? node, string path)
    {
        if (node is null) return;
        string? type = Str(node.AsObject(), "type", path);
        if (type == "NFC") { _nfc = true; return; }
        if (type == "Sequence" && node["normalizers"] is JsonArray { Count: 0 }) return;
        throw new InvalidDataException($"{path}: normalizer.type \"{type}\" is not supported (only none or NFC)");
    }

    private void ReadPreTokenizer(JsonNode? node, string path, string where)
    {
        if (node is null) throw new InvalidDataException($"{path}: {where} is null: not a byte-level BPE (no ByteLevel step)");
        var obj = node.AsObject();
        string? type = Str(obj, "type", path);
        switch (type)
        {
            case "Sequence":
                var steps = obj["pretokenizers"] as JsonArray ?? throw new InvalidDataException($"{path}: {where}.pretokenizers is not an array");
                for (int i = 0; i < steps.Count; i++)
                {
                    if (_sawByteLevel) throw new InvalidDataException($"{path}: {where}.pretokenizers[{i}] follows the ByteLevel step; only Split steps before ByteLevel are supported");
                    ReadPreTokenizer(steps[i], path, $"{where}.pretokenizers[{i}]");
                }
                break;
            case "ByteLevel":
                if (obj["add_prefix_space"]?.GetValue<bool>() == true)
                    throw new InvalidDataException($"{path}: {where}.add_prefix_space is true, which is not supported");
                _sawByteLevel = true;
                if (obj["use_regex"]?.GetValue<bool>() ?? true) _splits.Add(Gpt2Split);
                break;
            case "Split":
                if (Str(obj, "behavior", path) is var behavior && behavior != "Isolated")
                    throw new InvalidDataException($"{path}: {where}.behavior \"{behavior}\" is not supported (only Isolated)");
                if (obj["invert"]?.GetValue<bool>() == true)
                    throw new InvalidDataException($"{path}: {where}.invert is true, which is not supported");
                var pattern = obj["pattern"] as JsonObject ?? throw new InvalidDataException($"{path}: {where}.pattern is not an object");
                string regex = pattern["Regex"] is { } r ? RustToDotNet(r.GetValue<string>(), path, where)
                    : pattern["String"] is { } s ? Regex.Escape(s.GetValue<string>())
                    : throw new InvalidDataException($"{path}: {where}.pattern has neither Regex nor String");
                _splits.Add(new Regex(regex, RegexOptions.CultureInvariant | RegexOptions.Compiled));
                break;
            default:
                throw new InvalidDataException($"{path}: {where}.type \"{type}\" is not supported (only ByteLevel, Split, Sequence)");
        }
    }

    /// <summary>The Rust regex crate allows a class nested in a class (a union: BLOOM's <c>[^(\s|[.,!?…])]</c>); .NET
    /// reads the inner '[' as a literal and ends the class at the first ']'. Flattening the nested brackets gives
    /// .NET the same set; nested negations and set operations (&amp;&amp;, --, ~~) are refused.</summary>
    internal static string RustToDotNet(string pattern, string path, string where)
    {
        var sb = new StringBuilder(pattern.Length);
        int depth = 0;
        bool justOpened = false;   // a ']' right after "[" or "[^" is a literal, in both dialects
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            char next = i + 1 < pattern.Length ? pattern[i + 1] : '\0';
            if (c == '\\' && i + 1 < pattern.Length) { sb.Append(c).Append(next); i++; justOpened = false; continue; }
            if (depth > 0 && c is '&' or '-' or '~' && next == c)
                throw new InvalidDataException($"{path}: {where}.pattern uses the class operator '{c}{c}', which .NET regexes lack");
            if (c == '[')
            {
                if (depth > 0 && next == ':')
                    throw new InvalidDataException($"{path}: {where}.pattern uses a [[:name:]] class, which .NET regexes lack");
                if (depth == 0)
                {
                    sb.Append('[');
                    if (next == '^') { sb.Append('^'); i++; }
                }
                else if (next == '^')
                    throw new InvalidDataException($"{path}: {where}.pattern nests a negated class, which .NET regexes lack");
                depth++;   // a nested class's members join the outer class: its brackets are dropped
                justOpened = true;
                continue;
            }
            if (c == ']' && depth > 0)
            {
                if (justOpened) sb.Append("\\]");
                else if (--depth == 0) sb.Append(']');
                justOpened = false;
                continue;
            }
            sb.Append(c);
            justOpened = false;
        }
        return sb.ToString();
    }

    private (int[] Prefix, int[] Suffix) ReadTemplate(JsonNode? node, string path)
    {
        if (node is not JsonObject obj || Str(obj, "type", path) != "TemplateProcessing" || obj["single"] is not JsonArray single) return ([], []);
        var prefix = new List<int>();
        var suffix = new List<int>();
        bool seenSequence = false;
        foreach (var piece in single)
        {
            if (piece?["Sequence"] is not null) { seenSequence = true; continue; }
            string? token = piece?["SpecialToken"]?["id"]?.GetValue<string>();
            if (token is null) continue;
            // the template names tokens; their ids are in post_processor.special_tokens
            var ids = obj["special_tokens"]?[token]?["ids"] as JsonArray
                ?? throw new InvalidDataException($"{path}: post_processor names special token \"{token}\" but special_tokens has no ids for it");
            (seenSequence ? suffix : prefix).AddRange(ids.Select(x => x!.GetValue<int>()));
        }
        return ([.. prefix], [.. suffix]);
    }

    private static string? Str(JsonObject obj, string field, string path) => obj[field] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
        var other => throw new InvalidDataException($"{path}: \"{field}\" is not a string: {other.ToJsonString()}"),
    };

    /// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100 onwards, so that
    /// every byte is one visible character of the vocabulary.</summary>
    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
            map[b] = (b is >= '!' and <= '~') || (b is >= 0xA1 and <= 0xAC) || (b is >= 0xAE and <= 0xFF) ? (char)b : (char)next++;
        return map;
    }

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(_prefix);
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (!_added.TryGetValue(text[i], out var candidates)) continue;
            foreach (var (content, id) in candidates)
                if (string.CompareOrdinal(text, i, content, 0, content.Length) == 0)
                {
                    EncodeSegment(text[start..i], ids);
                    ids.Add(id);
                    start = i + content.Length;
                    i = start - 1;
                    break;
                }
        }
        EncodeSegment(text[start..], ids);
        ids.AddRange(_suffix);
        return [.. ids];
    }

    private void EncodeSegment(string segment, List<int> ids)
    {
        if (segment.Length == 0) return;
        // The project runs with InvariantGlobalization, where .NET's Normalize leaves non-ASCII text as it is: NFC
        // text (nearly all text) encodes exactly as with the tokenizers library; decomposed sequences stay decomposed.
        if (_nfc) segment = segment.Normalize(NormalizationForm.FormC);
        IEnumerable<string> pieces = [segment];
        foreach (var split in _splits) pieces = pieces.SelectMany(p => Isolate(split, p));
        foreach (string piece in pieces)
        {
            byte[] bytes = Utf8.GetBytes(piece);
            var word = new StringBuilder(bytes.Length);
            foreach (byte b in bytes) word.Append(ByteToChar[b]);
            ids.AddRange(Bpe(word.ToString()));
        }
    }

    /// <summary>Split with behavior Isolated: each match is a piece, and so is each non-empty stretch between.</summary>
    private static IEnumerable<string> Isolate(Regex regex, string text)
    {
        int last = 0;
        for (var m = regex.Match(text); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0) continue;
            if (m.Index > last) yield return text[last..m.Index];
            yield return m.Value;
            last = m.Index + m.Length;
        }
        if (last < text.Length) yield return text[last..];
    }

    private int[] Bpe(string word)
    {
        lock (_cache) if (_cache.TryGetValue(word, out var hit)) return hit;
        int[] result;
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole)) result = [whole];
        else
        {
            var symbols = word.Select(c => c.ToString()).ToList();
            while (symbols.Count > 1)
            {
                int best = int.MaxValue;
                (string, string) bestPair = default;
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (_ranks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < best) { best = rank; bestPair = (symbols[i], symbols[i + 1]); }
                if (best == int.MaxValue) break;
                var merged = new List<string>(symbols.Count);
                for (int i = 0; i < symbols.Count; i++)
                    if (i + 1 < symbols.Count && symbols[i] == bestPair.Item1 && symbols[i + 1] == bestPair.Item2) { merged.Add(symbols[i] + symbols[i + 1]); i++; }
                    else merged.Add(symbols[i]);
                symbols = merged;
            }
            result = new int[symbols.Count];
            for (int i = 0; i < symbols.Count; i++)
                result[i] = _vocab.TryGetValue(symbols[i], out int id) ? id
                    : throw new InvalidDataException($"{Name}: the merges produce \"{symbols[i]}\", which model.vocab lacks");
        }
        lock (_cache) _cache[word] = result;
        return result;
    }

    /// <summary>Added tokens decode to their content; the rest map back through the byte table. Bytes that are not
    /// valid UTF-8 (a character cut by a token boundary) become U+FFFD.</summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        Tokenizers.CheckIds(ids, VocabSize, Name);
        var text = new StringBuilder();
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (_addedById.TryGetValue(id, out string? content))
            {
                text.Append(Utf8.GetString([.. bytes])); bytes.Clear();
                text.Append(content);
                continue;
            }
            string token = _tokenById[id] ?? throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is unused in {Name}");
            foreach (char c in token)
                bytes.Add(CharToByte.TryGetValue(c, out byte b) ? b : throw new InvalidDataException($"{Name}: vocabulary token \"{token}\" has '{c}', not a byte-level symbol"));
        }
        text.Append(Utf8.GetString([.. bytes]));
        return text.ToString();
    }
}

/// <summary>tokenizer_config.json's BOS/EOS fields; each token may be a string or an AddedToken object with
/// "content". Absent file or fields are null, so each tokenizer applies transformers' default for its kind.</summary>
public sealed record TokenizerConfig(bool? AddBos, bool? AddEos, string? BosToken, string? EosToken)
{
    public const string FileName = "tokenizer_config.json";

    /// <summary>T5Tokenizer's extra_ids: how many &lt;extra_id_N&gt; sentinels follow the SentencePiece pieces; null when absent.</summary>
    public int? ExtraIds { get; init; }

    public static TokenizerConfig Read(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return new(null, null, null, null);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e); }
        if (root is not JsonObject obj) throw new InvalidDataException($"{path}: not a JSON object");
        bool? Flag(string field) => obj[field] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
            JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
            var other => throw new InvalidDataException($"{path}: {field} is not true or false: {other.ToJsonString()}"),
        };
        string? Token(string field) => obj[field] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            JsonObject o when o["content"] is JsonValue c && c.GetValueKind() == JsonValueKind.String => c.GetValue<string>(),
            var other => throw new InvalidDataException($"{path}: {field} is neither a string nor an object with \"content\": {other.ToJsonString()}"),
        };
        int? Count(string field) => obj[field] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out int n) && n >= 0 => n,
            var other => throw new InvalidDataException($"{path}: {field} is not a count (an integer ≥ 0): {other.ToJsonString()}"),
        };
        return new(Flag("add_bos_token"), Flag("add_eos_token"), Token("bos_token"), Token("eos_token")) { ExtraIds = Count("extra_ids") };
    }
}
