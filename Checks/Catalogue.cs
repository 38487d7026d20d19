using Llm.Checks.Ops;

namespace Llm.Checks;

/// <summary>Every op's properties: what "conformant" means, for the xunit suite and `llm conformance` alike.
/// A new op adds its file's <c>Properties</c> here.</summary>
public static class Catalogue
{
    public static IReadOnlyList<OpProperty> All { get; } =
    [
        .. EmbeddingChecks.Properties,
        .. MatMulChecks.Properties,
        .. LayerNormChecks.Properties,
        .. RmsNormChecks.Properties,
        .. GeluChecks.Properties,
        .. SwishChecks.Properties,
        .. SigmoidChecks.Properties,
        .. ReluChecks.Properties,
        .. GeluExactChecks.Properties,
        .. MultiplyChecks.Properties,
        .. DropoutChecks.Properties,
        .. RopeChecks.Properties,
        .. ResidualChecks.Properties,
        .. AttentionChecks.Properties,
        .. CopyColumnsChecks.Properties,
        .. CrossEntropyChecks.Properties,
        .. AdamWChecks.Properties,
        .. RelativePositionBiasChecks.Properties,
        .. SoftmaxChecks.Properties,
        .. MoeChecks.Properties,
    ];

    /// <summary>The properties whose "Op.Name" matches <paramref name="pattern"/>: comma-separated globs
    /// (* any run, ? one character), case-insensitive; a plain word matches as a substring ("LayerNorm").</summary>
    public static IReadOnlyList<OpProperty> Matching(string? pattern)
    {
        if (string.IsNullOrWhiteSpace(pattern)) return All;
        var globs = pattern.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(g => g.Contains('*') || g.Contains('?') ? g : $"*{g}*")
            .Select(g => new System.Text.RegularExpressions.Regex("^" + System.Text.RegularExpressions.Regex.Escape(g).Replace("\\*", ".*").Replace("\\?", ".") + "$",
                System.Text.RegularExpressions.RegexOptions.IgnoreCase))
            .ToList();
        return [.. All.Where(p => globs.Any(g => g.IsMatch(p.FullName)))];
    }
}
