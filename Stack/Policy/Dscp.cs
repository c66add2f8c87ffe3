namespace SockShim.Stack.Policy;

/// <summary>
/// DiffServ code points (RFC 2474, 2597, 3246) by the names routers use: EF (46, voice), AF11-AF43,
/// CS0-CS7, or a number 0-63. A pool can carry one, so that an edge router can classify a
/// socket's traffic by the class its source address was given.
/// </summary>
internal static class Dscp
{
    public const string Example = "EF (voice), AF41, CS3, or a number 0-63";

    public static bool TryParse(string text, out int codePoint)
    {
        codePoint = -1;
        string t = text.Trim().ToUpperInvariant();
        if (int.TryParse(t, out int n)) { codePoint = n; return n is >= 0 and <= 63; }
        switch (t)
        {
            case "EF": codePoint = 46; return true;
            case "BE" or "DEFAULT": codePoint = 0; return true;
            case "VOICE-ADMIT": codePoint = 44; return true;
        }
        if (t.Length == 3 && t.StartsWith("CS") && t[2] is >= '0' and <= '7') { codePoint = (t[2] - '0') << 3; return true; }
        // AFxy: class x (1-4) in the top three bits, drop precedence y (1-3) in the next two.
        if (t.Length == 4 && t.StartsWith("AF") && t[2] is >= '1' and <= '4' && t[3] is >= '1' and <= '3')
        {
            codePoint = ((t[2] - '0') << 3) | ((t[3] - '0') << 1);
            return true;
        }
        return false;
    }

    /// <summary>The TOS / traffic-class byte: the code point in its upper six bits (ECN bits left 0).</summary>
    public static int ToTrafficClass(int codePoint) => codePoint << 2;
}
