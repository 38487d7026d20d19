using System.Text;
using System.Text.RegularExpressions;

namespace Llm.Text;

/// <summary>
/// Text with span corruption's sentinels for a model whose vocabulary holds <paramref name="modelVocab"/> ids above a
/// tokenizer without them (the byte tokenizer + 100, as <c>train --objective span</c> builds it): &lt;extra_id_N&gt; is id
/// modelVocab − 1 − N, T5's numbering from the top. A tokenizer that has its own sentinels (T5's spiece.model) is used as it is.
/// </summary>
public static partial class SentinelText
{
    [GeneratedRegex(@"<extra_id_(\d{1,9})>", RegexOptions.CultureInvariant)]
    private static partial Regex Marker();

    /// <summary>Sentinels the model has above the tokenizer's ids (0 when it has none or the tokenizer holds them).</summary>
    public static int Added(ITokenizer tokenizer, int modelVocab) => Math.Max(0, modelVocab - tokenizer.VocabSize);

    /// <summary>The ids of <paramref name="text"/>, each &lt;extra_id_N&gt; (N below the added count) as its sentinel id.</summary>
    public static int[] Encode(ITokenizer tokenizer, string text, int modelVocab)
    {
        int added = Added(tokenizer, modelVocab);
        if (added == 0) return tokenizer.Encode(text);
        var ids = new List<int>();
        int at = 0;
        foreach (Match m in Marker().Matches(text))
        {
            if (!int.TryParse(m.Groups[1].ValueSpan, out int n) || n >= added) continue;   // not a sentinel of this model: plain text
            ids.AddRange(tokenizer.Encode(text[at..m.Index]));
            ids.Add(modelVocab - 1 - n);
            at = m.Index + m.Length;
        }
        ids.AddRange(tokenizer.Encode(text[at..]));
        return [.. ids];
    }

    /// <summary>Text of <paramref name="ids"/>: runs of the tokenizer's ids decoded by it, each added sentinel as &lt;extra_id_N&gt;.</summary>
    public static string Decode(ITokenizer tokenizer, ReadOnlySpan<int> ids, int modelVocab)
    {
        if (Added(tokenizer, modelVocab) == 0) return tokenizer.Decode(ids);
        var text = new StringBuilder();
        int i = 0;
        while (i < ids.Length)
        {
            int j = i;
            while (j < ids.Length && ids[j] < tokenizer.VocabSize) j++;
            text.Append(tokenizer.Decode(ids[i..j]));
            if (j < ids.Length) text.Append($"<extra_id_{modelVocab - 1 - ids[j]}>");
            i = j + 1;
        }
        return text.ToString();
    }
}
