namespace Llm.Text;

/// <summary>
/// Turns text into token ids and back. A model's vocabulary size (the rows of its embedding table) must equal
/// <see cref="VocabSize"/>; every id that <see cref="Encode"/> returns lies in [0, VocabSize).
/// </summary>
public interface ITokenizer
{
    /// <summary>The name <see cref="Tokenizers.Create"/> accepts: "byte" or "gpt2".</summary>
    string Name { get; }

    /// <summary>V: number of distinct ids.</summary>
    int VocabSize { get; }

    /// <summary>The document separator id, or null when the vocabulary has none.</summary>
    int? EndOfText { get; }

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

    /// <summary>Throws naming the position and value of the first id outside [0, vocabSize).</summary>
    internal static void CheckIds(ReadOnlySpan<int> ids, int vocabSize, string tokenizerName)
    {
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)vocabSize)
                throw new ArgumentOutOfRangeException(
                    $"token id {ids[i]} at position {i} is outside the {tokenizerName} vocabulary [0, {vocabSize})", innerException: null);
    }
}
