using System.Text;

namespace Llm.Text;

/// <summary>Training text: Jane Austen's Pride and Prejudice (public domain) built into the assembly, or a file.</summary>
public static class Corpus
{
    public const string PrideAndPrejudiceResource = "Llm.Corpus.prideprejudice.txt";

    static readonly Lazy<string> prideAndPrejudice = new(() => ReadResource(PrideAndPrejudiceResource));

    /// <summary>The full novel, ~680 kB of UTF-8 (≈ 700k byte tokens, ≈ 160k GPT-2 tokens).</summary>
    public static string PrideAndPrejudice => prideAndPrejudice.Value;

    /// <summary>
    /// The text of <paramref name="path"/> (UTF-8, BOM stripped), or the embedded novel when it is null.
    /// A missing, unreadable or empty file throws naming the file.
    /// </summary>
    public static string Load(string? path)
    {
        if (path is null) return PrideAndPrejudice;
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("corpus path is empty", nameof(path));
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new FileNotFoundException($"corpus file '{full}' does not exist", full);
        string text;
        try
        {
            text = File.ReadAllText(full, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"corpus file '{full}' could not be read: {e.Message}", e);
        }
        if (text.Length == 0) throw new InvalidDataException($"corpus file '{full}' is empty");
        return text;
    }

    static string ReadResource(string name)
    {
        using Stream stream = typeof(Corpus).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException(
                $"embedded resource '{name}' is missing from {typeof(Corpus).Assembly.GetName().Name}; " +
                $"present: {string.Join(", ", typeof(Corpus).Assembly.GetManifestResourceNames())}");
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }
}
