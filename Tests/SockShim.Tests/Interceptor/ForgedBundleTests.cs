using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace SockShim.Tests.Interceptor;

/// <summary>Single-file bundles whose header lies, as another account could hand root one to
/// start: the header is read from an untrusted file. Each is refused with one line naming the
/// file and what is wrong (never a stack trace), and the launcher runs with a 200 MB heap limit,
/// so a forged count, length or size that made it allocate (or write) gigabytes fails the test.
/// The bundles are LegacyApp's framework-dependent apphost of the test output with a forged
/// header appended and its offset patched in, as `dotnet publish` does; sparse files make a
/// header "fit" a file of gigabytes that costs no disk.</summary>
[NonParallelizable]
public class ForgedBundleTests
{
    private static ReadOnlySpan<byte> Signature =>
    [
        0x8b, 0x12, 0x02, 0xb9, 0x6a, 0x61, 0x20, 0x38, 0x72, 0x7b, 0x93, 0x02, 0x14, 0xd7, 0xa0, 0x32,
        0x13, 0xf5, 0xb9, 0xe6, 0xef, 0xae, 0x33, 0x18, 0xee, 0x3b, 0x2d, 0xce, 0x24, 0xb3, 0x6a, 0xae,
    ];

    private DirectoryInfo _work = null!;
    private string _cache = "";

    [OneTimeSetUp]
    public void Create()
    {
        SockShim.Tests.Network.TwoHosts.RequireRoot();
        _work = Directory.CreateTempSubdirectory("sockshim-forged-");
        _cache = Path.Combine(_work.FullName, "cache");
    }

    [OneTimeTearDown]
    public void Remove() => _work?.Delete(recursive: true);

    private static readonly Dictionary<string, string> SmallHeap = new() { ["DOTNET_GCHeapHardLimit"] = "0xC800000" };

    /// <summary>LegacyApp's apphost at <paramref name="name"/> with <paramref name="body"/> (the
    /// bundled files, then the header, at the body offset it returns)
    /// appended, the file first grown (sparse) to <paramref name="sparseTo"/> bytes.</summary>
    private string Bundle(string name, Func<long, (byte[] Body, long HeaderAt)> body, long sparseTo = 0)
    {
        string path = Path.Combine(_work.FullName, name);
        byte[] host = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "LegacyApp"));
        int at = host.AsSpan().IndexOf(Signature);
        Assert.That(at, Is.GreaterThan(8), "the apphost carries the bundle signature");
        long start = Math.Max(host.Length, sparseTo);
        var (bytes, headerAt) = body(start);
        BinaryPrimitives.WriteInt64LittleEndian(host.AsSpan(at - 8), start + headerAt);
        using (var file = new FileStream(path, FileMode.CreateNew))
        {
            file.Write(host);
            file.SetLength(start);
            file.Position = start;
            file.Write(bytes);
        }
        File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        return path;
    }

    /// <summary>A header: format 6, the files, no deps.json, the runtimeconfig at <paramref name="config"/>.</summary>
    private static void Header(BinaryWriter w, int count, string id, (long, long) config = default)
    {
        w.Write(6u); w.Write(0u); w.Write(count); w.Write(id);
        w.Write(0L); w.Write(0L); w.Write(config.Item1); w.Write(config.Item2); w.Write(0UL);
    }

    private static void Entry(BinaryWriter w, long offset, long size, long compressed, string path)
    {
        w.Write(offset); w.Write(size); w.Write(compressed); w.Write((byte)1); w.Write(path);
    }

    private static (byte[], long) Write(Action<BinaryWriter, long> write, long start)
    {
        var memory = new MemoryStream();
        using (var w = new BinaryWriter(memory, Encoding.UTF8, leaveOpen: true)) write(w, start);
        return (memory.ToArray(), 0);
    }

    private (int Exit, string Out, string Err) Run(string app) =>
        Programs.Run("SockShim.Interceptor", ["run", "--cache", _cache, "--", app], SmallHeap, TimeSpan.FromMinutes(3));

    private static void AssertOneLine(string stderr, string startsWith, params string[] says)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), "one line, no stack trace: " + stderr);
        Assert.That(lines[0], Does.StartWith(startsWith));
        foreach (var text in says) Assert.That(lines[0], Does.Contain(text));
    }

    [Test, CancelAfter(180_000)]
    public void A_forged_file_count_is_one_line()
    {
        string app = Bundle("count", start => Write((w, _) => Header(w, 1_000_000, "id"), start));
        var (exit, stdout, stderr) = Run(app);
        Assert.That(exit, Is.EqualTo(97), stdout + stderr);
        AssertOneLine(stderr, $"sockshim: not starting the app: {app} is a damaged single-file bundle (bundle claims 1000000 files)", "publish it again");
    }

    /// <summary>An offset near long.MaxValue: offset + size wraps below the header.</summary>
    [Test, CancelAfter(180_000)]
    public void An_entry_whose_offset_and_size_wrap_is_one_line()
    {
        string app = Bundle("wrap", start => Write((w, _) => { Header(w, 1, "id"); Entry(w, long.MaxValue - 8, 1024, 0, "System.Net.Sockets.dll"); }, start));
        var (exit, stdout, stderr) = Run(app);
        Assert.That(exit, Is.EqualTo(97), stdout + stderr);
        AssertOneLine(stderr, $"sockshim: not starting the app: {app} is a damaged single-file bundle (bundle entry System.Net.Sockets.dll", "lies outside the bundled files");
    }

    /// <summary>A bundle id whose length prefix says 1.5 GB, in a sparse file that long.</summary>
    [Test, CancelAfter(180_000)]
    public void A_bundle_id_of_gigabytes_is_refused_unread()
    {
        const int length = 1536 << 20;
        string app = Bundle("long-id", start =>
        {
            var memory = new MemoryStream();
            using (var w = new BinaryWriter(memory)) { w.Write(6u); w.Write(0u); w.Write(1); w.Write7BitEncodedInt(length); }
            return (memory.ToArray(), 0);
        });
        using (var file = new FileStream(app, FileMode.Open)) file.SetLength(file.Length + length + 4096);
        var (exit, stdout, stderr) = Run(app);
        Assert.That(exit, Is.EqualTo(97), stdout + stderr);
        AssertOneLine(stderr, $"sockshim: not starting the app: {app} is a damaged single-file bundle (the bundle id is {length} bytes long (at most 4096))");
    }

    /// <summary>An ELF header saying 65535 sections of 32767 bytes (2 GB of section table, in a
    /// sparse file that long): not an ELF64 table, so not a bundle; `prepare` says the app runs
    /// on the installed runtimes, without reading 2 GB.</summary>
    [Test, CancelAfter(180_000)]
    public void A_section_table_of_gigabytes_is_not_read()
    {
        string app = Path.Combine(_work.FullName, "sections");
        byte[] host = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "LegacyApp"));
        BinaryPrimitives.WriteInt64LittleEndian(host.AsSpan(0x28), host.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(host.AsSpan(0x3A), 32767);
        BinaryPrimitives.WriteUInt16LittleEndian(host.AsSpan(0x3C), 65535);
        BinaryPrimitives.WriteUInt16LittleEndian(host.AsSpan(0x3E), 1);
        using (var file = new FileStream(app, FileMode.CreateNew))
        {
            file.Write(host);
            file.SetLength(host.Length + 32767L * 65535 + 4096);
        }
        var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["prepare", "--cache", _cache, app], SmallHeap, TimeSpan.FromMinutes(3));
        Assert.That(exit, Is.Zero, stdout + stderr);
        Assert.That(stderr, Is.Empty, "no stack trace");
        Assert.That(stdout, Does.Contain($"app {app}: runs on the installed runtimes above (framework-dependent)"));
    }

    /// <summary>The third review: a .data section whose size is negative (the file's number)
    /// passed the bounds check (a sum that wraps, a size compared only against its maximum) and
    /// became an array of negative length: a stack trace from root's `prepare`. Not a bundle now:
    /// the host is read as the framework-dependent apphost it is.</summary>
    [Test, CancelAfter(180_000)]
    public void A_data_section_of_negative_size_is_not_read()
    {
        string app = Path.Combine(_work.FullName, "negative-data");
        byte[] host = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "LegacyApp"));
        long table = BinaryPrimitives.ReadInt64LittleEndian(host.AsSpan(0x28));
        int count = BinaryPrimitives.ReadUInt16LittleEndian(host.AsSpan(0x3C)), namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(host.AsSpan(0x3E));
        long names = BinaryPrimitives.ReadInt64LittleEndian(host.AsSpan((int)table + namesIndex * 64 + 0x18));
        int data = Enumerable.Range(0, count).Single(i =>
        {
            int name = BinaryPrimitives.ReadInt32LittleEndian(host.AsSpan((int)table + i * 64));
            return host.AsSpan((int)names + name).StartsWith(".data\0"u8);
        });
        BinaryPrimitives.WriteInt64LittleEndian(host.AsSpan((int)table + data * 64 + 0x20), -16);
        File.WriteAllBytes(app, host);
        File.SetUnixFileMode(app, (UnixFileMode)0b111_101_101);
        var (exit, stdout, stderr) = Programs.Run("SockShim.Interceptor", ["prepare", "--cache", _cache, app], SmallHeap, TimeSpan.FromMinutes(3));
        Assert.That(exit, Is.Zero, stdout + stderr);
        Assert.That(stderr, Is.Empty, "no stack trace");
        Assert.That(stdout, Does.Contain($"app {app}: runs on the installed runtimes above (framework-dependent)"));
    }

    /// <summary>A self-contained bundle (its runtimeconfig says so) whose entries inflate from
    /// one deflate stream of zeros: 20 assemblies of 60 MB each from 60 kB of file. Refused
    /// before anything is written out, with one line.</summary>
    [Test, CancelAfter(180_000)]
    public void A_bundle_inflating_to_gigabytes_is_refused_before_it_is_written_out()
    {
        const int size = 60 << 20;
        var zeros = new MemoryStream();
        using (var deflate = new DeflateStream(zeros, CompressionLevel.SmallestSize, leaveOpen: true))
            for (int i = 0; i < size / (1 << 20); i++) deflate.Write(new byte[1 << 20]);
        byte[] config = Encoding.UTF8.GetBytes("""{"runtimeOptions":{"tfm":"net10.0","includedFrameworks":[{"name":"Microsoft.NETCore.App","version":"10.0.0"}]}}""");
        string app = Bundle("bomb", start =>
        {
            var memory = new MemoryStream();
            using var w = new BinaryWriter(memory, Encoding.UTF8);
            w.Write(zeros.ToArray());
            w.Write(config);
            long headerAt = memory.Position;
            Header(w, 21, "id", (start + zeros.Length, config.Length));
            for (int i = 0; i < 20; i++) Entry(w, start, size, zeros.Length, $"A{i}.dll");
            Entry(w, start, 1 << 30, zeros.Length, "System.Net.Sockets.dll");
            w.Flush();
            return (memory.ToArray(), headerAt);
        });
        var (exit, stdout, stderr) = Run(app);
        Assert.That(exit, Is.EqualTo(2), stdout + stderr);
        AssertOneLine(stderr, $"sockshim: cannot start {app} from a copy with its System.Net.Sockets woven: its bundled assemblies declare {20L * size} bytes",
            "a damaged or forged bundle");
        Assert.That(Directory.EnumerateFiles(Path.Combine(_cache, "tmp"), "*", SearchOption.AllDirectories), Is.Empty, "nothing of it is left in the cache");
    }
}
