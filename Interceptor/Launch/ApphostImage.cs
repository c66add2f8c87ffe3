namespace SockShim.Interceptor.Launch;

/// <summary>
/// What a framework-dependent apphost will start, read from the two fields `dotnet build` writes
/// into its copy of the SDK's template host: the app's dll (1,025 bytes: a path of up to 1,024
/// bytes of UTF-8, NUL-padded) and, from .NET 9 on, how it searches for a .NET installation (a
/// location byte, a NUL and an app-relative path: location 0 with the path's 64-byte placeholder
/// left as it is means the default search: a hostfxr in the app's folder, then
/// DOTNET_ROOT_&lt;ARCH&gt; and DOTNET_ROOT, then the registered or default installation).
/// Both are found by content, the way the SDK itself finds them to write them: the proof
/// (<see cref="HooklessProof"/>) takes an apphost only when exactly one field names the dll of
/// its own name, no template placeholder is left for the app path, the search placeholder is
/// there untouched and nothing is bundled. Anything else keeps the startup hook, which checks at
/// start: this reading only decides whether that check can be left out.
/// </summary>
internal static class ApphostImage
{
    /// <summary>Well above the apphost `dotnet build` writes (about 80 kB): a larger file is a
    /// bundle or another program, and is not read further.</summary>
    internal const int MaxBytes = 1 << 20;

    /// <summary>The host's buffer for the app path: 1,024 bytes and a NUL.</summary>
    private const int AppPathField = 1025;

    /// <summary>SHA-256 of "foobar": the app path field of the SDK's template before the build writes over it.</summary>
    private static ReadOnlySpan<byte> AppPathPlaceholder => "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"u8;

    /// <summary>The .NET 9 search-options field as the template has it: left so by a build that sets no AppHostDotNetSearch.</summary>
    private static ReadOnlySpan<byte> DefaultSearchPlaceholder => "19ff3e9c3602ae8e841925bb461a0adb064a1f1903667a5e0d87e8f608f425ac"u8;

    /// <summary>Null when <paramref name="apphost"/> is an apphost that starts the dll of its own
    /// name beside it, searching for .NET the default way; otherwise why not.</summary>
    /// <param name="apphost">Its real path.</param>
    /// <param name="image">The bytes judged (what a copy of the apphost must be made from).</param>
    public static string? WhyNot(string apphost, out byte[]? image)
    {
        image = null;
        try { image = Store.TrustedPaths.ReadBounded(apphost, MaxBytes); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return $"{apphost} is not read as an apphost: {ex.Message}"; }
        ReadOnlySpan<byte> bytes = image;
        if (!bytes.StartsWith((ReadOnlySpan<byte>)[0x7f, (byte)'E', (byte)'L', (byte)'F']))
            return $"{apphost} is not an apphost (a script or another program decides itself what loads)";
        if (Count(bytes, SingleFileBundle.Signature) != 1 || HeaderOffset(bytes) != 0)
            return $"{apphost} is not an apphost with nothing bundled (a single-file app reads its runtimeconfig from inside itself)";
        if (Count(bytes, AppPathPlaceholder) != 0) return $"{apphost} names no app (the SDK's template, never built for one)";
        string dll = Path.GetFileName(apphost) + ".dll";
        int fields = AppPathFields(bytes, System.Text.Encoding.UTF8.GetBytes(dll));
        if (fields != 1)
            return $"{apphost} does not start {dll} (its own name's dll) in exactly one field: it was renamed after the build, or starts another app";
        // The field is <search location byte> NUL <app-relative path, or the placeholder>: location 0 is the default search.
        int search = bytes.IndexOf(DefaultSearchPlaceholder);
        if (Count(bytes, DefaultSearchPlaceholder) != 1 || search < 2 || bytes[search - 2] != 0 || bytes[search - 1] != 0)
            return $"{apphost} was built with its own .NET search options (AppHostDotNetSearch), or before .NET 9: where it finds .NET is not read here";
        return null;
    }

    /// <summary>The places where <paramref name="name"/> fills an app path field: a NUL before it
    /// (or the field's start at a NUL-padded boundary) and only NULs after it to the field's end.</summary>
    private static int AppPathFields(ReadOnlySpan<byte> image, ReadOnlySpan<byte> name)
    {
        int found = 0;
        for (int from = 0; from < image.Length;)
        {
            int at = image[from..].IndexOf(name);
            if (at < 0) break;
            at += from;
            int end = at + AppPathField;
            if (at > 0 && image[at - 1] == 0 && end <= image.Length && !image[(at + name.Length)..end].ContainsAnyExcept((byte)0)) found++;
            from = at + 1;
        }
        return found;
    }

    /// <summary>The 8 bytes before the bundle signature: the bundle header's offset, 0 when nothing is bundled.</summary>
    private static long HeaderOffset(ReadOnlySpan<byte> image)
    {
        int at = image.IndexOf(SingleFileBundle.Signature);
        return at >= 8 ? System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(image[(at - 8)..]) : -1;
    }

    private static int Count(ReadOnlySpan<byte> image, ReadOnlySpan<byte> what)
    {
        int count = 0;
        for (int at; (at = image.IndexOf(what)) >= 0; image = image[(at + what.Length)..]) count++;
        return count;
    }
}
