using System.Buffers.Binary;
using System.Text;

namespace SockShim.Interceptor.Launch;

/// <summary>
/// The .NET hosting layer's single-file bundle, as `dotnet publish -p:PublishSingleFile=true`
/// writes it (format 2 and later; 6 since .NET 6), read and written here and nowhere else:
///
///   [ ELF host, whose .data holds an 8-byte header offset followed by <see cref="Signature"/> ]
///   [ embedded files, assemblies 16-byte aligned, each optionally deflate-compressed ]
///   [ header: u32 major, u32 minor, i32 file count, string bundle id,
///             i64 deps.json offset, i64 size, i64 runtimeconfig.json offset, i64 size, u64 flags ]
///   [ one entry per file: i64 offset, i64 size, i64 compressed size (format 6; 0 = stored),
///             u8 type, string path ]
///
/// Strings are BinaryWriter's: a 7-bit encoded length, then UTF-8. Nothing here trusts a value
/// read: offsets and sizes are checked against the file before use.
/// </summary>
public sealed class SingleFileBundle
{
    /// <summary>SHA-256 of ".net core bundle": every apphost carries it; the 8 bytes before it are
    /// the header's offset, 0 when nothing is bundled.</summary>
    public static ReadOnlySpan<byte> Signature =>
    [
        0x8b, 0x12, 0x02, 0xb9, 0x6a, 0x61, 0x20, 0x38, 0x72, 0x7b, 0x93, 0x02, 0x14, 0xd7, 0xa0, 0x32,
        0x13, 0xf5, 0xb9, 0xe6, 0xef, 0xae, 0x33, 0x18, 0xee, 0x3b, 0x2d, 0xce, 0x24, 0xb3, 0x6a, 0xae,
    ];

    public enum FileType : byte { Unknown = 0, Assembly = 1, NativeBinary = 2, DepsJson = 3, RuntimeConfigJson = 4, Symbols = 5 }

    public sealed record Entry(long Offset, long Size, long CompressedSize, FileType Type, string Path);

    /// <summary>An apphost's .data is a few kB, a single-file host's some hundred kB.</summary>
    private const int MaxDataBytes = 16 << 20;
    private const int MaxFiles = 65536;
    /// <summary>The host's own limit for the bundle id and a bundled file's path (PATH_MAX): a
    /// longer length prefix is damage, never read (a sparse file could make it gigabytes).</summary>
    private const int MaxStringBytes = 4096;
    /// <summary>ELF64's section header size: any other would make the table's size the file's word.</summary>
    private const int ElfSectionHeaderBytes = 64;

    /// <summary>Where in the host the header's offset is written (patched by <see cref="Write"/>).</summary>
    public long HeaderOffsetAt { get; private init; }
    public long HeaderAt { get; private init; }
    public uint Major { get; private init; }
    public uint Minor { get; private init; }
    public string BundleId { get; private init; } = "";
    public (long Offset, long Size) DepsJson { get; private init; }
    public (long Offset, long Size) RuntimeConfigJson { get; private init; }
    public ulong Flags { get; private init; }
    public IReadOnlyList<Entry> Files { get; private init; } = [];

    /// <summary>The bundle in <paramref name="file"/>, or null when it is an ELF host with nothing
    /// bundled (or not an ELF file at all). Throws <see cref="InvalidDataException"/> for a
    /// header that says more than the file holds.</summary>
    public static SingleFileBundle? Read(FileStream file, Dictionary<string, (long Offset, long Size)> sections)
    {
        if (!sections.TryGetValue(".data", out var data) || data.Size < 0 || data.Size > MaxDataBytes || data.Offset < 0 || data.Offset > file.Length - data.Size) return null; // no sum that could wrap
        var bytes = new byte[data.Size];
        file.Position = data.Offset;
        file.ReadExactly(bytes);
        int at = bytes.AsSpan().IndexOf(Signature);
        if (at < 8) return null;
        long headerAt = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(at - 8));
        if (headerAt == 0) return null;
        if (headerAt < 0 || headerAt > file.Length - 12) throw new InvalidDataException($"bundle header offset {headerAt} is outside the file ({file.Length} bytes)");

        using var reader = new BinaryReader(file, Encoding.UTF8, leaveOpen: true);
        file.Position = headerAt;
        uint major = reader.ReadUInt32(), minor = reader.ReadUInt32();
        int count = reader.ReadInt32();
        string id = ReadString(reader, "the bundle id");
        if (major < 2) throw new InvalidDataException($"bundle format {major}.{minor} is older than .NET 5's, which SockShim does not read");
        if (count < 0 || count > MaxFiles) throw new InvalidDataException($"bundle claims {count} files");
        var deps = (reader.ReadInt64(), reader.ReadInt64());
        var config = (reader.ReadInt64(), reader.ReadInt64());
        ulong flags = reader.ReadUInt64();
        var files = new List<Entry>(count);
        for (int i = 0; i < count; i++)
        {
            long offset = reader.ReadInt64(), size = reader.ReadInt64();
            long compressed = major >= 6 ? reader.ReadInt64() : 0;
            var type = (FileType)reader.ReadByte();
            string path = ReadString(reader, $"the path of bundled file {i}");
            long stored = compressed > 0 ? compressed : size;
            if (offset < 0 || size < 0 || compressed < 0 || offset > headerAt || stored > headerAt - offset) // no sum that could wrap
                throw new InvalidDataException($"bundle entry {path} ({offset}+{stored}) lies outside the bundled files");
            files.Add(new Entry(offset, size, compressed, type, path));
        }
        return new SingleFileBundle
        {
            HeaderOffsetAt = data.Offset + at - 8, HeaderAt = headerAt, Major = major, Minor = minor, BundleId = id,
            DepsJson = deps, RuntimeConfigJson = config, Flags = flags, Files = files,
        };
    }

    /// <summary>A BinaryWriter string (7-bit encoded length, UTF-8) of at most
    /// <see cref="MaxStringBytes"/>, with no NUL (which no path can hold).</summary>
    private static string ReadString(BinaryReader reader, string what)
    {
        int length;
        try { length = reader.Read7BitEncodedInt(); }
        catch (FormatException) { throw new InvalidDataException($"the length of {what} is not a 7-bit encoded number"); }
        if (length < 0 || length > MaxStringBytes) throw new InvalidDataException($"{what} is {length} bytes long (at most {MaxStringBytes})");
        var bytes = reader.ReadBytes(length);
        if (bytes.Length != length) throw new InvalidDataException($"{what} runs past the end of the file");
        if (bytes.AsSpan().Contains((byte)0)) throw new InvalidDataException($"{what} holds a NUL byte");
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>Writes the bytes of <paramref name="entry"/> (inflated when it was stored
    /// compressed) to <paramref name="target"/>, a buffer at a time: what the header declares is
    /// what is written, never more, so neither memory nor disk follows a forged size further
    /// than the caller allowed by looking at <see cref="Entry.Size"/> first.</summary>
    public static void Extract(FileStream file, Entry entry, Stream target)
    {
        file.Position = entry.Offset;
        if (entry.CompressedSize == 0)
        {
            CopyBytes(file, target, entry.Size);
            return;
        }
        using var slice = new Slice(file, entry.CompressedSize);
        using var inflate = new System.IO.Compression.DeflateStream(slice, System.IO.Compression.CompressionMode.Decompress);
        try { CopyBytes(inflate, target, entry.Size); }
        catch (EndOfStreamException) { throw new InvalidDataException($"bundled {entry.Path} inflates to less than the {entry.Size} bytes its entry declares"); }
    }

    /// <summary>The next <c>length</c> bytes of a stream, read-only, for the inflater: it never
    /// reads past the entry's compressed bytes.</summary>
    private sealed class Slice(Stream inner, long length) : Stream
    {
        private long _left = length;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = inner.Read(buffer, offset, (int)Math.Min(count, _left));
            _left -= n;
            return n;
        }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Writes a copy of the bundle in <paramref name="source"/> to <paramref name="target"/>
    /// in which <paramref name="path"/> holds <paramref name="replacement"/>: the host and every
    /// file as they were, the new file appended after them (page-aligned), then a new header
    /// under <paramref name="bundleId"/> (the host extracts files into a directory named by it),
    /// whose offset is patched into the copy's host.</summary>
    public void Write(FileStream source, Stream target, string path, ReadOnlySpan<byte> replacement, string bundleId)
    {
        if (Files.Count(f => f.Path == path) != 1) throw new InvalidDataException($"the bundle holds no single {path}");
        source.Position = 0;
        CopyBytes(source, target, HeaderAt);
        long at = (HeaderAt + 4095) / 4096 * 4096;
        target.Write(new byte[at - HeaderAt]);
        target.Write(replacement);
        long header = target.Position;
        using (var writer = new BinaryWriter(target, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Major); writer.Write(Minor); writer.Write(Files.Count); writer.Write(bundleId);
            writer.Write(DepsJson.Offset); writer.Write(DepsJson.Size);
            writer.Write(RuntimeConfigJson.Offset); writer.Write(RuntimeConfigJson.Size);
            writer.Write(Flags);
            foreach (var f in Files)
            {
                var e = f.Path == path ? f with { Offset = at, Size = replacement.Length, CompressedSize = 0 } : f;
                writer.Write(e.Offset); writer.Write(e.Size);
                if (Major >= 6) writer.Write(e.CompressedSize);
                writer.Write((byte)e.Type); writer.Write(e.Path);
            }
        }
        Span<byte> offset = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(offset, header);
        target.Position = HeaderOffsetAt;
        target.Write(offset);
    }

    private static void CopyBytes(Stream from, Stream to, long count)
    {
        var buffer = new byte[1 << 20];
        while (count > 0)
        {
            int n = from.Read(buffer, 0, (int)Math.Min(buffer.Length, count));
            if (n <= 0) throw new EndOfStreamException("the bundle ended early");
            to.Write(buffer, 0, n);
            count -= n;
        }
    }

    /// <summary>The sections (file offset and size by name) of a 64-bit little-endian ELF file
    /// (section headers survive `strip`); null for anything else.</summary>
    public static Dictionary<string, (long Offset, long Size)>? ElfSections(FileStream elf)
    {
        Span<byte> header = stackalloc byte[64];
        if (elf.Length < header.Length) return null;
        elf.Position = 0;
        elf.ReadExactly(header);
        if (!header[..4].SequenceEqual((ReadOnlySpan<byte>)[0x7f, (byte)'E', (byte)'L', (byte)'F'])) return null;
        if (header[4] != 2 || header[5] != 1) return null; // ELFCLASS64, ELFDATA2LSB
        long sectionsAt = BinaryPrimitives.ReadInt64LittleEndian(header[0x28..]);
        int entrySize = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3A..]);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3C..]);
        int namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3E..]);
        if (entrySize != ElfSectionHeaderBytes || count == 0 || namesIndex >= count || sectionsAt <= 0 || sectionsAt > elf.Length - (long)entrySize * count) return null; // the file's numbers: no sum that could wrap
        var table = new byte[entrySize * count];
        elf.Position = sectionsAt;
        elf.ReadExactly(table);
        var names = table.AsSpan(namesIndex * entrySize, entrySize);
        long namesAt = BinaryPrimitives.ReadInt64LittleEndian(names[0x18..]);
        long namesSize = BinaryPrimitives.ReadInt64LittleEndian(names[0x20..]);
        if (namesAt <= 0 || namesSize <= 0 || namesSize > 1 << 20 || namesAt > elf.Length - namesSize) return null;
        var text = new byte[namesSize];
        elf.Position = namesAt;
        elf.ReadExactly(text);
        var sections = new Dictionary<string, (long, long)>();
        for (int i = 0; i < count; i++)
        {
            var entry = table.AsSpan(i * entrySize, entrySize);
            int name = BinaryPrimitives.ReadInt32LittleEndian(entry);
            if (name < 0 || name >= text.Length) continue;
            int length = text.AsSpan(name).IndexOf((byte)0);
            if (length <= 0) continue;
            sections.TryAdd(Encoding.ASCII.GetString(text, name, length),
                (BinaryPrimitives.ReadInt64LittleEndian(entry[0x18..]), BinaryPrimitives.ReadInt64LittleEndian(entry[0x20..])));
        }
        return sections;
    }

    /// <summary>The bundled runtimeconfig.json as text, or null when there is none or it is too big.</summary>
    public string? RuntimeConfig(FileStream file)
    {
        var (at, size) = RuntimeConfigJson;
        if (at <= 0 || size <= 0 || size > 1 << 20 || at > file.Length - size) return null;
        var bytes = new byte[size];
        file.Position = at;
        file.ReadExactly(bytes);
        return Encoding.UTF8.GetString(bytes);
    }
}
