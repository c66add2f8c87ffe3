using Tmds.Linux;

namespace SockShim.Stack.Dhcp;

/// <summary>The steps of an acquisition a crash can fall between, in order.</summary>
internal enum CrashPoint { None, AfterDiscover, AfterRequest, AfterAck, AfterProvision }

/// <summary>
/// A test seam for "nothing is lost when a holder dies at any step": with
/// SOCKSHIM_TEST_KILL_AT set to a step's name (after-discover, after-request, after-ack,
/// after-provision), the process sends itself SIGKILL the first time it reaches that step, so
/// a test can check from outside that gc or the next process releases what the server
/// leased. Only ever kills the process that reads it; unset, it costs one field read.
/// </summary>
internal static class CrashPoints
{
    private static readonly CrashPoint s_killAt = Parse(Environment.GetEnvironmentVariable("SOCKSHIM_TEST_KILL_AT"));

    public static void Reached(CrashPoint point)
    {
        if (point == s_killAt && point != CrashPoint.None) LibC.kill(LibC.getpid(), LibC.SIGKILL);
    }

    private static CrashPoint Parse(string? name) => name switch
    {
        "after-discover" => CrashPoint.AfterDiscover,
        "after-request" => CrashPoint.AfterRequest,
        "after-ack" => CrashPoint.AfterAck,
        "after-provision" => CrashPoint.AfterProvision,
        _ => CrashPoint.None,
    };
}
