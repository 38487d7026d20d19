using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;

namespace Llm.Tools;

/// <summary>
/// System.CommandLine's parse errors in the CLI's words: "--steps: 'abc' is not an integer" rather than "Cannot parse
/// argument 'abc' for option '--steps' as expected type 'System.Int32'", and "unknown command 'foo'" rather than
/// "Required command was not provided". The wording comes from the parse result's structure (which option, which
/// token, which value type), never from rewriting the library's English.
/// </summary>
internal static class ParseErrors
{
    /// <summary>One line saying what is wrong with the command line, or null when it parsed cleanly.</summary>
    public static string? Explain(ParseResult parse)
    {
        if (parse.Errors.Count == 0) return null;
        var command = parse.CommandResult.Command;
        if (parse.UnmatchedTokens.Count > 0) return Unmatched(parse, parse.UnmatchedTokens[0]);
        if (command is RootCommand) return $"no command given; the commands are {Commands(parse)} (see llm --help)";
        var error = parse.Errors.FirstOrDefault(e => e.SymbolResult is OptionResult) ?? parse.Errors[0];
        if (error.SymbolResult is OptionResult option) return ForOption(option, error.Message, command.Name);
        return $"{OneLine(error.Message)} (see llm {command.Name} --help)";
    }

    /// <summary>Folds a multi-line message (System.CommandLine lists choices on lines of their own) into one line.</summary>
    public static string OneLine(string message) =>
        string.Join(' ', message.Split(['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>A token no option or command took: a misspelt command, an unknown option, or a value after a switch.</summary>
    private static string Unmatched(ParseResult parse, string token)
    {
        var command = parse.CommandResult.Command;
        if (command is RootCommand)
            return token.StartsWith('-')
                ? $"unknown option '{token}'; give a command first: {Commands(parse)} (see llm --help)"
                : $"unknown command '{token}'; the commands are {Commands(parse)}";
        if (token.StartsWith('-'))
            return $"unknown option '{token}' for {command.Name} (see llm {command.Name} --help)";
        // a switch (a bool option) takes no value, so in "--json maybe" the parser leaves "maybe" over
        var tokens = parse.Tokens;
        for (int i = 1; i < tokens.Count; i++)
            if (tokens[i].Type == TokenType.Argument && tokens[i].Value == token && tokens[i - 1].Type == TokenType.Option
                && FindOption(parse, tokens[i - 1].Value) is { ValueType: var type } flag
                && (Nullable.GetUnderlyingType(type) ?? type) == typeof(bool))
                return $"{flag.Name}: '{token}' is not true or false (the switch alone means true)";
        return $"unexpected value '{token}' for {command.Name}: every value follows its option, as in --data FILE (see llm {command.Name} --help)";
    }

    private static string ForOption(OptionResult result, string message, string command)
    {
        var option = result.Option;
        string name = option.Name;
        var tokens = result.Tokens;
        if (tokens.Count == 0)
            return result.IdentifierToken is null ? $"{name} is required (see llm {command} --help)" : $"{name} needs a value";
        if (tokens.Count > 1 && option.Arity.MaximumNumberOfValues == 1)
            return $"{name} is given {tokens.Count} times ({string.Join(", ", tokens.Select(t => $"'{t.Value}'"))}); give it once";
        string value = tokens[0].Value;
        if (NotA(option.ValueType, value) is { } problem) return $"{name}: '{value}' {problem}";
        return OneLine(message);  // a rule of this CLI (OptionRules), already worded as "--batch must be ≥ 1, got 0"
    }

    /// <summary>Why <paramref name="value"/> is not a <paramref name="type"/>, in words; null when it is one.</summary>
    private static string? NotA(Type type, string value)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        var inv = CultureInfo.InvariantCulture;
        if (type == typeof(int)) return int.TryParse(value, inv, out _) ? null : NotAnInteger(value, int.MinValue, int.MaxValue);
        if (type == typeof(long)) return long.TryParse(value, inv, out _) ? null : NotAnInteger(value, long.MinValue, long.MaxValue);
        if (type == typeof(uint)) return uint.TryParse(value, inv, out _) ? null : NotAnInteger(value, uint.MinValue, uint.MaxValue);
        if (type == typeof(ulong)) return ulong.TryParse(value, inv, out _) ? null : NotAnInteger(value, ulong.MinValue, ulong.MaxValue);
        if (type == typeof(float) || type == typeof(double))
            return double.TryParse(value, NumberStyles.Float, inv, out _) ? null : "is not a number";
        if (type == typeof(bool)) return bool.TryParse(value, out _) ? null : "is not true or false";
        if (type.IsEnum)
            return Enum.TryParse(type, value, ignoreCase: true, out _) ? null : $"is not one of {string.Join(", ", Enum.GetNames(type)).ToLowerInvariant()}";
        return null;
    }

    private static string NotAnInteger(string value, BigInteger min, BigInteger max)
    {
        if (!BigInteger.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n))
            return min == 0 ? "is not a whole number ≥ 0" : "is not an integer";
        return n < min ? $"is below the smallest accepted value, {min}" : $"is above the largest accepted value, {max}";
    }

    /// <summary>The option called <paramref name="name"/> on the parsed command or, when recursive, on a command above it.</summary>
    private static Option? FindOption(ParseResult parse, string name)
    {
        for (var result = parse.CommandResult; result is not null; result = result.Parent as CommandResult)
            foreach (var option in result.Command.Options)
                if (option.Name == name || option.Aliases.Contains(name))
                    if (result == parse.CommandResult || option.Recursive) return option;
        return null;
    }

    private static string Commands(ParseResult parse) =>
        string.Join(", ", parse.RootCommandResult.Command.Subcommands.Select(c => c.Name));
}
