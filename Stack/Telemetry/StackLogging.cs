using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace SockShim.Stack.Telemetry;

/// <summary>
/// SockShim's logging: quiet unless SOCKSHIM_LOG names a level (error, warning, information,
/// debug, trace), then to standard error, where it does not mix with the app's output.
/// </summary>
internal static class StackLogging
{
    public const string Variable = "SOCKSHIM_LOG";

    private static readonly Lazy<ILoggerFactory> s_factory = new(Create);

    public static ILogger For(string category) => s_factory.Value.CreateLogger(category);

    private static ILoggerFactory Create()
    {
        string? text = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrWhiteSpace(text) || !Enum.TryParse<LogLevel>(text.Trim(), ignoreCase: true, out var level) || level == LogLevel.None)
            return NullLoggerFactory.Instance;
        return Console(level);
    }

    // Kept apart so an app that logs nothing never loads the console logger.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ILoggerFactory Console(LogLevel level) =>
        LoggerFactory.Create(b => b.SetMinimumLevel(level).AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; })
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
}
