using System.Text;

namespace SockShim.Stack.Wire;

/// <summary>
/// The privileged helper's protocol on its Unix socket: one ASCII line per request and per
/// answer. Requests: <c>ACQUIRE pool</c>, <c>RELEASE address</c>, <c>DESCRIBE pool</c>. Answers:
/// <c>OK payload</c> or <c>ERR code message</c>. Lines are short and checked: anything longer
/// than <see cref="MaxLine"/>, not ASCII, or not of this grammar is refused.
/// </summary>
internal static class HelperMessage
{
    public const int MaxLine = 512;
    public const string Acquire = "ACQUIRE", Release = "RELEASE", Describe = "DESCRIBE";

    /// <summary>Error codes of an ERR answer.</summary>
    public const string NotGranted = "not-granted", OverQuota = "over-quota", Exhausted = "exhausted", UnknownPool = "unknown-pool", BadRequest = "bad-request", NotHeld = "not-held",
        Busy = "busy";

    public readonly record struct Request(string Verb, string Argument);

    /// <summary>Parses one request line (without its newline).</summary>
    public static bool TryParseRequest(ReadOnlySpan<byte> line, out Request request, out string error)
    {
        request = default;
        if (line.Length == 0) { error = "an empty line"; return false; }
        if (line.Length > MaxLine) { error = $"a line of {line.Length} bytes (at most {MaxLine})"; return false; }
        foreach (byte b in line)
            if (b is < 0x20 or > 0x7e) { error = $"byte 0x{b:x2}: requests are printable ASCII"; return false; }
        string text = Encoding.ASCII.GetString(line);
        int space = text.IndexOf(' ');
        if (space <= 0 || space == text.Length - 1 || text.IndexOf(' ', space + 1) >= 0) { error = "not 'VERB argument'"; return false; }
        string verb = text[..space], argument = text[(space + 1)..];
        if (verb is not (Acquire or Release or Describe)) { error = $"unknown verb '{Truncate(verb)}' (known: {Acquire}, {Release}, {Describe})"; return false; }
        request = new Request(verb, argument);
        error = "";
        return true;
    }

    public static string Ok(string payload) => "OK " + payload;

    public static string Error(string code, string message) => $"ERR {code} {message.Replace('\n', ' ')}";

    /// <summary>Parses an answer: OK with its payload, or ERR with code and message.</summary>
    public static bool TryParseAnswer(string line, out bool ok, out string payload, out string code)
    {
        ok = false; payload = ""; code = "";
        if (line.StartsWith("OK ", StringComparison.Ordinal)) { ok = true; payload = line[3..]; return true; }
        if (!line.StartsWith("ERR ", StringComparison.Ordinal)) return false;
        int space = line.IndexOf(' ', 4);
        if (space < 0) return false;
        code = line[4..space];
        payload = line[(space + 1)..];
        return true;
    }

    public static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "...";
}
