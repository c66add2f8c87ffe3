using System.Text;

namespace SockShim.Interceptor.Store;

public sealed partial class AppOverlay
{
    /// <summary>What the overlay depends on (the app directory, its names, the files it copies by
    /// identity, the weaver's version and the caller's text), and the directory named from it.</summary>
    private static OverlayKey Key(string what, string appDirectory, string[] copied, bool names = true, IEnumerable<string>? listed = null)
    {
        // Version 2: overlays made before their woven copy was keyed by all it was woven from
        // (WovenOwn) are made again, not found. Version 3: named by FNV-1a, the text recorded.
        // Version 4: each name led by its length, so a name with a newline in it is never two.
        var text = new StringBuilder($"sockshim overlay 4 w{Contract.HookContract.CurrentWeaverVersion}\n{what}\n");
        foreach (var file in copied) text.Append($"{file} {Identity(Path.Combine(appDirectory, file))}\n");
        if (names)
            foreach (var entry in (listed ?? Directory.EnumerateFileSystemEntries(appDirectory).Select(e => Path.GetFileName(e))).Order(StringComparer.Ordinal)) text.Append(entry.Length).Append(':').Append(entry).Append('\n');
        return new OverlayKey(text.ToString());
    }

    /// <summary>An overlay's key: its directory is named by the text's FNV-1a, not a cryptographic
    /// hash (SHA-256 here loaded OpenSSL into the launcher: some 2 ms of every start of such an
    /// app), and an overlay is taken only when the text recorded in it (<see cref="KeyFile"/>) is
    /// this one byte for byte: two keys whose names collide (the app's owner chooses much of the
    /// text) never share an overlay, one only makes the other's again.</summary>
    private sealed record OverlayKey(string Text)
    {
        public string Name { get; } = $"{Stack.Addressing.Fnv1a.Hash64(Text):x16}";
        public byte[] Bytes => Encoding.UTF8.GetBytes(Text);

        /// <summary>Whether <paramref name="overlay"/> records this key.</summary>
        public bool RecordedIn(string overlay)
        {
            byte[] expected = Bytes;
            try { return TrustedPaths.ReadBounded(Path.Combine(overlay, KeyFile), expected.Length + 1).AsSpan().SequenceEqual(expected); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
        }
    }

    /// <summary>The file an overlay records its key text in; an app entry of this name (or the
    /// marker's) is not linked.</summary>
    internal const string KeyFile = ".sockshim-key";
}
