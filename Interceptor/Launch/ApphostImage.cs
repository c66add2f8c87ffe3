using SockShim.Stack.Interop;

namespace SockShim.Interceptor.Launch;

/// <summary>
/// What a framework-dependent apphost will start. `dotnet build` makes an apphost by copying the
/// SDK's template host (packs/Microsoft.NETCore.App.Host.&lt;rid&gt;/&lt;version&gt;/runtimes/&lt;rid&gt;/native/apphost)
/// and writing one field: the app's dll, in 1,025 bytes (a path of up to 1,024 bytes of UTF-8,
/// NUL-padded) where the template has a placeholder. Everything else the host decides by, the
/// .NET 9 search options (a location byte, a NUL and an app-relative path: the template's are the
/// default search) and the switch that lets test variables steer it, is the template's.
/// <para>The proof (<see cref="HooklessProof"/>) takes an apphost only when it is byte for byte a
/// template of the installation it will run on, outside that field, and the field names the dll
/// of its own name beside it. Found by content instead (the first way this was written), a field
/// is whatever the file's owner appends: a decoy name or search placeholder at the end of the file
/// passed while the host read the real fields, which named another folder's app or installation
/// (the seventh review). An apphost from a template the installation does not carry (built by
/// another SDK, or for another runtime version) is not proved: the startup hook stays.</para>
/// </summary>
internal static class ApphostImage
{
    /// <summary>Well above the apphost `dotnet build` writes (about 80 kB): a larger file is a
    /// bundle or another program, and is not read further.</summary>
    internal const int MaxBytes = 1 << 20;

    /// <summary>The host's buffer for the app path: 1,024 bytes and a NUL.</summary>
    private const int AppPathField = 1025;

    /// <summary>The host's buffer for the search options: the location byte, a NUL, the app-relative path.</summary>
    private const int SearchField = 512;

    /// <summary>SHA-256 of "foobar": the app path field of the SDK's template before the build writes over it.</summary>
    private static ReadOnlySpan<byte> AppPathPlaceholder => "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"u8;

    /// <summary>SHA-256 of "dotnet-search": the app-relative path of the search options field, as the template has it.</summary>
    private static ReadOnlySpan<byte> SearchPlaceholder => "19ff3e9c3602ae8e841925bb461a0adb064a1f1903667a5e0d87e8f608f425ac"u8;

    /// <summary>Null when <paramref name="apphost"/> is a template apphost of
    /// <paramref name="installation"/> that starts the dll of its own name beside it; otherwise why not.</summary>
    /// <param name="apphost">Its real path.</param>
    /// <param name="installation">The .NET installation it will run on, by real path.</param>
    /// <param name="image">The bytes judged (what a copy of the apphost must be made from).</param>
    public static string? WhyNot(string apphost, string installation, out byte[]? image)
    {
        image = null;
        try { image = Store.TrustedPaths.ReadBounded(apphost, MaxBytes); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return $"{apphost} is not read as an apphost: {ex.Message}"; }
        ReadOnlySpan<byte> bytes = image;
        if (!bytes.StartsWith((ReadOnlySpan<byte>)[0x7f, (byte)'E', (byte)'L', (byte)'F']))
            return $"{apphost} is not an apphost (a script or another program decides itself what loads)";
        string dll = Path.GetFileName(apphost) + ".dll";
        string? closest = null;
        foreach (var template in Templates(installation))
        {
            byte[] original;
            try { original = Store.TrustedPaths.ReadBounded(template, MaxBytes); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { continue; }
            int field = ((ReadOnlySpan<byte>)original).IndexOf(AppPathPlaceholder);
            if (original.Length != bytes.Length || field < 0 || field > original.Length - AppPathField) continue;
            int differs = Difference(bytes, original, field);
            if (differs >= 0)
            {
                closest ??= Differing(apphost, template, original, differs);
                continue;
            }
            var written = bytes.Slice(field, AppPathField);
            int end = written.IndexOf((byte)0);
            if (end < 0 || written[end..].ContainsAnyExcept((byte)0) || !written[..end].SequenceEqual(System.Text.Encoding.UTF8.GetBytes(dll)))
                return $"{apphost} does not start {dll} (its own name's dll) but {System.Text.Encoding.UTF8.GetString(written[..Math.Max(end, 0)])}: renamed after the build, or made to start another app";
            return null;
        }
        return closest ?? $"{apphost} is not byte for byte an apphost of {installation}'s packs (Microsoft.NETCore.App.Host.{System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier}): " +
            "built by another SDK or for another runtime, a single-file app, or no SDK is installed there";
    }

    /// <summary>The apps <paramref name="apphost"/> may start, by what its file holds where an app
    /// path would be: every NUL-led name ending in .dll followed by NULs to the end of a field.
    /// Not a proof (the owner can append any), but what `sockshim run` reads to look at the
    /// runtimeconfig of an app whose apphost was renamed; empty when unreadable.</summary>
    public static IReadOnlyList<string> NamedApps(string apphost)
    {
        byte[] image;
        try { image = Store.TrustedPaths.ReadBounded(apphost, MaxBytes); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return []; }
        var names = new List<string>();
        ReadOnlySpan<byte> bytes = image;
        for (int from = 0; from < bytes.Length;)
        {
            int at = bytes[from..].IndexOf(".dll\0"u8);
            if (at < 0) break;
            at += from;
            int start = bytes[..at].LastIndexOf((byte)0) + 1;
            int end = at + 4;
            if (start > 0 && end - start < AppPathField && start + AppPathField <= bytes.Length && !bytes[end..(start + AppPathField)].ContainsAnyExcept((byte)0))
                names.Add(System.Text.Encoding.UTF8.GetString(bytes[start..end]));
            from = end + 1;
        }
        return names;
    }

    /// <summary>The apphost templates <paramref name="installation"/> carries for this platform; as
    /// root only those root owns and no other account can write, nor any directory above them.</summary>
    private static IEnumerable<string> Templates(string installation)
    {
        string rid = System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier;
        string packs = Path.Combine(installation, "packs", $"Microsoft.NETCore.App.Host.{rid}");
        if (!Directory.Exists(packs)) yield break;
        foreach (var version in Directory.GetDirectories(packs))
        {
            string template = Path.Combine(version, "runtimes", rid, "native", "apphost");
            if (HostPaths.Canonical(template) is not { } canonical) continue;
            if (Store.TrustedPaths.AsRoot && HostPaths.Problem(canonical, leafIsFile: true) is not null) continue;
            yield return canonical;
        }
    }

    /// <summary>The first byte where <paramref name="image"/> differs from <paramref name="template"/>
    /// outside the app path field at <paramref name="field"/>; -1 when none.</summary>
    private static int Difference(ReadOnlySpan<byte> image, ReadOnlySpan<byte> template, int field)
    {
        int before = image[..field].CommonPrefixLength(template[..field]);
        if (before < field) return before;
        int after = field + AppPathField;
        int same = image[after..].CommonPrefixLength(template[after..]);
        return after + same < image.Length ? after + same : -1;
    }

    private static string Differing(string apphost, string template, ReadOnlySpan<byte> original, int at)
    {
        int search = original.IndexOf(SearchPlaceholder) - 2; // the location byte and its NUL lead the field
        return search >= 0 && at >= search && at < search + SearchField
            ? $"{apphost} was built with its own .NET search options (AppHostDotNetSearch): where it finds .NET is not the default search"
            : $"{apphost} differs from the SDK's apphost {template} at byte {at}, outside the app path the build writes: changed after the build";
    }
}
