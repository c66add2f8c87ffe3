namespace SockShim.Stack.Addressing;

/// <summary>FNV-1a, 64 bits: a name made from content, not a defence. It needs no crypto library,
/// which every app under the launcher (and the launcher itself) would otherwise load at start-up
/// (about 10 ms measured here). Names address sets (a pool's table) and the files the launcher
/// keeps by their text (a runtimeconfig copy), where no other account writes.</summary>
internal static class Fnv1a
{
    public static ulong Hash64(ReadOnlySpan<char> text)
    {
        ulong hash = 0xcbf29ce484222325;
        foreach (char c in text) hash = (hash ^ c) * 0x100000001b3;
        return hash;
    }
}
