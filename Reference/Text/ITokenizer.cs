namespace Llm.Text;

/// <summary>
/// Turns text into token ids and back. A model's vocabulary size (the rows of its embedding table) must equal
/// <see cref="VocabSize"/>; every id that <see cref="Encode"/> returns lies in [0, VocabSize).
/// </summary>
public interface ITokenizer
{
    /// <summary>"byte" or "gpt2" (what <see cref="Tokenizers.Create"/> accepts), or the path of the tokenizer file it
    /// was read from.</summary>
    string Name { get; }

    /// <summary>V: number of distinct ids.</summary>
    int VocabSize { get; }

    /// <summary>The document separator id, or null when the vocabulary has none.</summary>
    int? EndOfText { get; }

    /// <summary>The id <see cref="Encode"/> prepends when the tokenizer's configuration says so, or null.</summary>
    int? BeginOfText => null;

    int[] Encode(string text);

    /// <summary>Text for <paramref name="ids"/>; throws naming the first id outside [0, VocabSize).</summary>
    string Decode(ReadOnlySpan<int> ids);
}

/// <summary>Builds a tokenizer from its name, as stored in checkpoints and given on the command line.</summary>
public static class Tokenizers
{
    public static IReadOnlyList<string> Names { get; } = ["byte", "gpt2"];

    public static ITokenizer Create(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "byte" => new ByteTokenizer(),
            "gpt2" => Gpt2Tokenizer.Shared,
            _ => throw new ArgumentException($"unknown tokenizer '{name}'; known: {string.Join(", ", Names)}"),
        };
    }

    public const string SentencePieceFile = "tokenizer.model";
    public const string HfJsonFile = "tokenizer.json";
    /// <summary>T5's SentencePiece file (a Unigram model; its 100 &lt;extra_id_N&gt; sentinels are not pieces of it).</summary>
    public const string T5SentencePieceFile = "spiece.model";

    /// <summary>A name ("byte", "gpt2"), a folder (its tokenizer.model, else spiece.model, else tokenizer.json), or the
    /// path of a tokenizer.model or spiece.model (SentencePiece) or tokenizer.json (Hugging Face) file.</summary>
    public static ITokenizer Open(string nameOrPath)
    {
        ArgumentNullException.ThrowIfNull(nameOrPath);
        if (Names.Contains(nameOrPath.Trim().ToLowerInvariant())) return Create(nameOrPath);
        string path = nameOrPath;
        if (Directory.Exists(path))
            path = InFolder(path) ?? throw new FileNotFoundException($"{nameOrPath}: the folder has none of {SentencePieceFile}, {T5SentencePieceFile}, {HfJsonFile}");
        else if (!File.Exists(path))
            throw new ArgumentException($"unknown tokenizer '{nameOrPath}': neither a name ({string.Join(", ", Names)}) nor an existing file or folder");
        return path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? HfJsonTokenizer.Load(path) : new SentencePieceFileTokenizer(path);
    }

    /// <summary>The folder's tokenizer.model, else its spiece.model, else its tokenizer.json, else null. spiece.model
    /// comes before tokenizer.json because a T5 folder has both and its tokenizer.json is a Unigram model, which
    /// <see cref="HfJsonTokenizer"/> does not read.</summary>
    public static string? InFolder(string folder)
    {
        foreach (string file in new[] { SentencePieceFile, T5SentencePieceFile, HfJsonFile })
            if (File.Exists(Path.Combine(folder, file))) return Path.Combine(folder, file);
        return null;
    }

    /// <summary>What a model folder's own files say its tokenizer is: its tokenizer.model, else tokenizer.json, else
    /// config.json's llm_tokenizer, else "gpt2" for a GPT-2 family folder (hub GPT-2 downloads carry only vocab.json
    /// and merges.txt, which are GPT-2's). Null for another family with none of these: no default is right there.</summary>
    public static string? ForFolder(string folder, string? configTokenizer, Models.WeightNaming family) =>
        InFolder(folder) ?? configTokenizer ?? (family == Models.WeightNaming.Gpt2 ? "gpt2" : null);

    /// <summary>An encoder-decoder folder's tokenizer: its tokenizer file (<see cref="InFolder"/>; a T5 download's
    /// spiece.model), else config.json's llm_tokenizer, else null.</summary>
    public static string? ForFolder(string folder, string? configTokenizer) => InFolder(folder) ?? configTokenizer;

    /// <summary>The tokenizer for a model: <paramref name="requested"/> (--tokenizer) when given, else
    /// <paramref name="folderTokenizer"/> (from <see cref="ForFolder"/>). Throws naming the folder and the files looked
    /// for when there is none, and naming both sizes when the tokenizer has more ids than the model's vocab_size.</summary>
    public static ITokenizer ForModel(string? requested, string folder, string? folderTokenizer, Models.DecoderConfig model) =>
        ForModel(requested, folder, folderTokenizer, model.VocabSize);

    /// <summary><see cref="ForModel(string?, string, string?, Models.DecoderConfig)"/> for any model of
    /// <paramref name="vocabSize"/> ids (an encoder-decoder's: T5's 32,128 rows hold its 32,100 ids).</summary>
    public static ITokenizer ForModel(string? requested, string folder, string? folderTokenizer, int vocabSize)
    {
        string source = requested ?? folderTokenizer ?? throw new FileNotFoundException(
            $"{folder}: no tokenizer: the folder has none of {SentencePieceFile}, {T5SentencePieceFile}, {HfJsonFile}, and its config.json names none ({IO.HfConfig.TokenizerField}); give --tokenizer");
        var tokenizer = Open(source);
        if (tokenizer.VocabSize > vocabSize)
            throw new InvalidDataException($"tokenizer {tokenizer.Name} has {tokenizer.VocabSize} ids, more than the model's vocab_size {vocabSize} ({folder})");
        return tokenizer;
    }

    /// <summary>Throws naming the position and value of the first id outside [0, vocabSize).</summary>
    internal static void CheckIds(ReadOnlySpan<int> ids, int vocabSize, string tokenizerName)
    {
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)vocabSize)
                throw new ArgumentOutOfRangeException(
                    $"token id {ids[i]} at position {i} is outside the {tokenizerName} vocabulary [0, {vocabSize})", innerException: null);
    }
}
