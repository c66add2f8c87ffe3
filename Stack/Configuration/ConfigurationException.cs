namespace SockShim.Stack.Configuration;

/// <summary>One wrong setting: where it came from, what it said, why that is wrong, and a good value.</summary>
public sealed record SettingProblem(string Source, string Value, string Reason, string Example)
{
    public override string ToString() =>
        $"{Source} = '{Value}': {Reason}. Example of a good value: {Example}";
}

/// <summary>Configuration that cannot be used. Its message lists every problem found, one a line,
/// so a user fixes them all in one go.</summary>
public sealed class ConfigurationException : Exception
{
    public IReadOnlyList<SettingProblem> Problems { get; }

    public ConfigurationException(IReadOnlyList<SettingProblem> problems)
        : base("SockShim configuration is invalid:" + string.Concat(problems.Select(p => Environment.NewLine + "  " + p)))
    {
        Problems = problems;
    }

    public ConfigurationException(SettingProblem problem) : this([problem]) { }
}
