using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Llm.Tools;

/// <summary>
/// Range rules checked while the command line is parsed, so a value that cannot run is refused before a model loads
/// or a device opens, as "--batch must be ≥ 1, got 0".
/// </summary>
internal static class OptionRules
{
    /// <summary>Adds a rule to <paramref name="option"/>: <paramref name="ok"/> must hold for its value, else the
    /// error reads "NAME must be RULE, got VALUE". Defaults are not checked: they are known to be good.</summary>
    public static Option<T> Must<T>(this Option<T> option, Func<T, bool> ok, string rule)
    {
        option.Validators.Add(result =>
        {
            if (result.Implicit || !TryGetValue(result, out T value) || ok(value)) return;
            result.AddError($"{option.Name} must be {rule}, got {Show(value)}");
        });
        return option;
    }

    public static Option<int> AtLeast(this Option<int> option, int min) => option.Must(v => v >= min, $"≥ {min}");

    public static Option<int?> AtLeast(this Option<int?> option, int min) => option.Must(v => v is null || v >= min, $"≥ {min}");

    /// <summary>The parser runs rules even on a token it could not convert, and reading the value then throws; that
    /// token already has its own error ("'abc' is not an integer"), so the rule stays silent.</summary>
    private static bool TryGetValue<T>(OptionResult result, out T value)
    {
        try
        {
            value = result.GetValueOrDefault<T>();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = default!;
            return false;
        }
    }

    private static string Show<T>(T value) => value switch
    {
        null => "nothing",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
