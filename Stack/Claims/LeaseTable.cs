using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;

namespace SockShim.Stack.Claims;

/// <summary>
/// The host-wide claim table of one pool: a memory-mapped file in a shared state directory,
/// one 64-byte slot per address: owner, release stamp, acquisition time, holder's socket, and for
/// a DHCP pool the lease's journal record (server, IAID, expiry), so whoever finds a dead holder
/// can release its lease at the server. A slot is claimed by a compare-and-swap of its owner word
/// from 0 to the claimer's <see cref="ProcessIdentity"/> token.
/// </summary>
/// <remarks>
/// Why a shared mapping with atomic claims rather than a lock file or a daemon: a claim and a
/// release cost one interlocked instruction on memory every process on the host sees, with no
/// system call (the pool target is under a microsecond), and nothing has to be running for it
/// to work. Crash safety comes from the owner word itself: it names a pid and that process's
/// start time, so a holder that died (SIGKILL included) is recognised and its slots reclaimed
/// by the next process that sweeps; a recycled pid has another start time and does not match.
/// The file is created fully initialised under a temporary name and linked into place, so a
/// process never maps a half-written header.
///
/// Every word is read as untrusted input, every time (another process of the account, a bug, a
/// stray write): slot indices never come from the file, the header is checked before each claim
/// (a damaged one makes the pool fail closed), and each slot carries a seal over the words that
/// decide who holds it (owner, pid namespace, DHCP journal). A slot whose seal does not match is
/// "cannot tell": never claimed, never reclaimed, its address never removed.
/// </remarks>
internal unsafe class LeaseTable : IDisposable
{
    private const ulong Magic = 0x314D_4853_4B43_4F53; // "SOCKSHM1"
    private const int Version = 5;

    /// <summary>Part of every table's file name, so a new layout never opens an old file.</summary>
    public const string FileVersion = "v5";
    private const int HeaderSize = 64;
    private const int SlotSize = 64;
    // Header offsets.
    private const int OffMagic = 0, OffVersion = 8, OffSlotCount = 12, OffReleaseSeq = 24, OffCursor = 32, OffLowHint = 40, OffIaidSeq = 48;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private int _disposed;

    public string Path { get; }
    public int SlotCount { get; }

    private LeaseTable(string path, MemoryMappedFile file, MemoryMappedViewAccessor view, byte* basePtr, int slots)
    {
        Path = path;
        _file = file;
        _view = view;
        _base = basePtr;
        SlotCount = slots;
    }

    /// <summary>Opens the table at <paramref name="path"/>, creating it when there is none. The
    /// file is opened as <see cref="HostFiles"/> allows: this account's, not through a link, of
    /// exactly the expected size.</summary>
    public static LeaseTable Open(string path, int slotCount)
    {
        long size = HeaderSize + (long)slotCount * SlotSize;
        var stream = HostFiles.OpenExisting(path, size);
        if (stream is null)
        {
            // Created fully initialised under a random name and linked into place, so a process
            // never maps a half-written header; a process that links first wins.
            HostFiles.Publish(path, fs => Initialise(fs, slotCount, size), replace: false);
            stream = HostFiles.OpenExisting(path, size) ?? throw new UntrustedStateException($"lease table {path} vanished as it was made");
        }
        var file = MemoryMappedFile.CreateFromFile(stream, null, size, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
        return Map(path, file, size, slotCount);
    }

    /// <summary>An existing table, or null when there is none: for readers (status, gc), which
    /// never create one.</summary>
    public static LeaseTable? OpenExisting(string path, int slotCount)
    {
        long size = HeaderSize + (long)slotCount * SlotSize;
        var stream = HostFiles.OpenExisting(path, size);
        return stream is null ? null : Map(path, MemoryMappedFile.CreateFromFile(stream, null, size, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false), size, slotCount);
    }

    /// <summary>A table no other process sees (anonymous memory): the local bookkeeping of a
    /// pool whose host-wide table belongs to the privileged helper.</summary>
    public static LeaseTable OpenPrivate(int slotCount)
    {
        long size = HeaderSize + (long)slotCount * SlotSize;
        var file = MemoryMappedFile.CreateNew(null, size, MemoryMappedFileAccess.ReadWrite);
        using (var header = file.CreateViewStream(0, HeaderSize)) Initialise(header, slotCount, size: -1);
        return Map("(private)", file, size, slotCount);
    }

    private static LeaseTable Map(string path, MemoryMappedFile file, long size, int slotCount)
    {
        var view = file.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        p += view.PointerOffset;
        // A damaged header is not refused here: the pool opens and fails closed at each claim
        // (the other pools of the process go on), and serves again once the header is whole.
        return new LeaseTable(path, file, view, p, slotCount);
    }

    private static void Initialise(Stream fs, int slotCount, long size)
    {
        Span<byte> header = stackalloc byte[HeaderSize];
        header.Clear();
        Unsafe.WriteUnaligned(ref header[OffMagic], Magic);
        Unsafe.WriteUnaligned(ref header[OffVersion], Version);
        Unsafe.WriteUnaligned(ref header[OffSlotCount], slotCount);
        fs.Write(header);
        if (size > 0) fs.SetLength(size); // sparse zeroes: every slot free
    }

    private long* Owner(int slot) => (long*)(_base + HeaderSize + (long)slot * SlotSize);
    private long* Released(int slot) => (long*)(_base + HeaderSize + (long)slot * SlotSize + 8);
    private long* AcquiredAt(int slot) => (long*)(_base + HeaderSize + (long)slot * SlotSize + 16);
    private long* SocketWord(int slot) => (long*)(_base + HeaderSize + (long)slot * SlotSize + 24);
    private long* DhcpWord(int slot) => (long*)(_base + HeaderSize + (long)slot * SlotSize + 32);
    private long* ExpiresAt(int slot) => (long*)(_base + HeaderSize + (long)slot * SlotSize + 40);
    private long* PidNamespaceWord(int slot) => (long*)(_base + HeaderSize + (long)slot * SlotSize + 48);
    private long* SealWord(int slot) => (long*)(_base + HeaderSize + (long)slot * SlotSize + 56);

    /// <summary>Why the table cannot be trusted now (its header is not what this process mapped),
    /// or null. Read at every claim: the file may change under the mapping at any time.</summary>
    public string? Damage()
    {
        ulong magic = Volatile.Read(ref *(ulong*)(_base + OffMagic));
        int version = Volatile.Read(ref *(int*)(_base + OffVersion)), slots = Volatile.Read(ref *(int*)(_base + OffSlotCount));
        return magic == Magic && version == Version && slots == SlotCount ? null
            : $"lease table {Path} is damaged (header: magic {magic:x16}, version {version}, {slots} slots; expected {Magic:x16}, {Version}, {SlotCount}): " +
              "its pool gives no addresses until it is repaired; remove the file when no process uses the pool";
    }

    // The seal of a slot's deciding words: a mix (splitmix64's finaliser) that a stray or random
    // write does not reproduce. Not a secret: the only writers are this account's processes.
    private static long Seal(int slot, long owner, long pidNamespace, long dhcp, long expires)
    {
        ulong x = (ulong)owner ^ (ulong)pidNamespace * 0x9E3779B97F4A7C15 ^ (ulong)dhcp * 0xC2B2AE3D27D4EB4F ^ (ulong)expires * 0x165667B19E3779F9 ^ (ulong)slot << 40;
        x = (x ^ x >> 30) * 0xBF58476D1CE4E5B9;
        x = (x ^ x >> 27) * 0x94D049BB133111EB;
        x ^= x >> 31;
        return x == 0 ? 1 : (long)x; // 0 is a free slot's seal
    }

    private void Reseal(int slot, long owner) => Volatile.Write(ref *SealWord(slot),
        Seal(slot, owner, Volatile.Read(ref *PidNamespaceWord(slot)), Volatile.Read(ref *DhcpWord(slot)), Volatile.Read(ref *ExpiresAt(slot))));

    /// <summary>Whether the slot's words are whole: free with no seal, or held with a seal that
    /// matches. False while a claim or release is being written, and for a damaged slot.</summary>
    public bool IsSound(int slot, long owner)
    {
        long pidNamespace = Volatile.Read(ref *PidNamespaceWord(slot)), dhcp = Volatile.Read(ref *DhcpWord(slot)), expires = Volatile.Read(ref *ExpiresAt(slot));
        long seal = Volatile.Read(ref *SealWord(slot));
        return owner == 0 ? seal == 0 : seal == Seal(slot, owner, pidNamespace, dhcp, expires);
    }

    /// <summary>The pid namespace of the slot's holder (0 while a claim is being written).</summary>
    public long PidNamespaceOf(int slot) => Volatile.Read(ref *PidNamespaceWord(slot));

    /// <summary>The pid namespace to judge the slot's owner in, or null when who holds it cannot
    /// be told. A sealed slot names it; a slot caught half written (owner set, seal 0: a claim,
    /// a release or a journal write under way, or cut short by a kill) is judged by its owner's
    /// token, when that carries this process's namespace mark. A slot whose seal does not match
    /// (a stray or forged write) cannot tell.</summary>
    private long? JudgeIn(int slot, long owner)
    {
        if (IsSound(slot, owner)) return PidNamespaceOf(slot);
        return Volatile.Read(ref *SealWord(slot)) == 0 && ProcessIdentity.MarkedWithOurNamespace(owner & ~ProcessIdentity.Releasing) ? ProcessIdentity.PidNamespace : null;
    }

    /// <summary>Whether the slot's holder may still run (see <see cref="ProcessIdentity.IsAlive"/>);
    /// a slot that cannot tell counts as alive.</summary>
    public bool HolderMayRun(int slot, long owner) => JudgeIn(slot, owner) is not { } pidNamespace || ProcessIdentity.IsAlive(owner, pidNamespace);

    /// <summary>A host-wide IAID for a new DHCP client identifier: unique among every process
    /// using this pool, which a per-process counter could not promise.</summary>
    public uint NextIaid() => (uint)Interlocked.Increment(ref *Header(OffIaidSeq));

    /// <summary>Journals the DHCP lease <paramref name="owner"/> holds in <paramref name="slot"/>:
    /// its server (IPv4, network order), the IAID of its client identifier, and its expiry (Unix
    /// milliseconds). Nothing is written unless the slot is still the owner's: a renewal that
    /// lands after its socket gave the address back must not seal a free slot (it would be stuck).</summary>
    public void SetDhcp(int slot, long owner, uint server, uint iaid, long expiresUnixMs)
    {
        if (OwnerOf(slot) != owner) return;
        Volatile.Write(ref *SealWord(slot), 0); // half written from here: judged by its owner
        Volatile.Write(ref *ExpiresAt(slot), expiresUnixMs);
        Volatile.Write(ref *DhcpWord(slot), (long)((ulong)server << 32 | iaid));
        Reseal(slot, owner);
    }

    /// <summary>A renewed lease's new expiry, on the same terms as <see cref="SetDhcp"/>.</summary>
    public void SetExpiry(int slot, long owner, long expiresUnixMs)
    {
        if (OwnerOf(slot) != owner) return;
        Volatile.Write(ref *SealWord(slot), 0);
        Volatile.Write(ref *ExpiresAt(slot), expiresUnixMs);
        Reseal(slot, owner);
    }

    /// <summary>The expiry journalled with a lease that is requested and not bound yet: the server
    /// may bind it for any time, so whoever finds it left by a dead holder releases it.</summary>
    public const long ExpiryNotYetKnown = long.MaxValue;

    /// <summary>The journal record of a DHCP lease, or null for a static address.</summary>
    public (uint Server, uint Iaid, long ExpiresUnixMs)? DhcpOf(int slot)
    {
        ulong word = (ulong)Volatile.Read(ref *DhcpWord(slot));
        if (word == 0) return null;
        return ((uint)(word >> 32), (uint)word, Volatile.Read(ref *ExpiresAt(slot)));
    }

    /// <summary>The socket word of a prefetched address that waits, on the host, for a socket.</summary>
    public const long ReadySocket = -2;

    /// <summary>The holder's socket descriptor, for status (-1: not known yet; <see cref="ReadySocket"/>: prefetched).</summary>
    public long SocketOf(int slot) => Volatile.Read(ref *SocketWord(slot)) - 1;

    /// <summary>Records the descriptor of the socket that holds <paramref name="slot"/>.</summary>
    public void SetSocket(int slot, long descriptor) => Volatile.Write(ref *SocketWord(slot), descriptor + 1);

    /// <summary>When the slot's current holder claimed it (Unix milliseconds; 0: unknown).</summary>
    public long AcquiredAtUnixMs(int slot) => Volatile.Read(ref *AcquiredAt(slot));
    private long* Header(int offset) => (long*)(_base + offset);

    public long OwnerOf(int slot) => Volatile.Read(ref *Owner(slot));

    /// <summary>Release sequence number of a slot's last release (0: never released).</summary>
    public long ReleasedAt(int slot) => Volatile.Read(ref *Released(slot));

    public bool TryClaimSlot(int slot, long owner)
    {
        // Free means owner 0 and no seal: a slot with a seal left over is damaged and never taken.
        // Until the claimer seals its words, a reclaimer reads "cannot tell", which is alive.
        if (Volatile.Read(ref *SealWord(slot)) != 0 || Interlocked.CompareExchange(ref *Owner(slot), owner, 0) != 0) return false;
        Volatile.Write(ref *PidNamespaceWord(slot), ProcessIdentity.PidNamespace);
        Volatile.Write(ref *AcquiredAt(slot), Environment.TickCount64 + s_bootToUnixMs);
        Volatile.Write(ref *SocketWord(slot), 0);
        Volatile.Write(ref *DhcpWord(slot), 0);
        Volatile.Write(ref *ExpiresAt(slot), 0);
        Reseal(slot, owner);
        return true;
    }

    // A clock read per claim must be cheap: the tick count is, and this offset makes it Unix time.
    private static readonly long s_bootToUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - Environment.TickCount64;

    /// <summary>Claims a free slot by the pool's strategy; -1 when every slot is held.</summary>
    public int Claim(Addressing.AllocationStrategy strategy, long owner)
    {
        if (Damage() is not null) return -1;
        int n = SlotCount;
        switch (strategy)
        {
            case Addressing.AllocationStrategy.Sequential:
            {
                // From the lowest free slot a release has hinted at; the hint moves past what is taken.
                long hint = Volatile.Read(ref *Header(OffLowHint));
                int slot = ClaimFrom((int)((ulong)hint % (ulong)n), owner);
                if (slot >= 0) Interlocked.CompareExchange(ref *Header(OffLowHint), slot + 1, hint);
                return slot;
            }
            case Addressing.AllocationStrategy.Random:
                return ClaimFrom(System.Random.Shared.Next(n), owner);
            default:
                return ClaimLeastRecentlyReleased(owner);
        }
    }

    private int ClaimFrom(int start, long owner)
    {
        int n = SlotCount;
        for (int i = 0; i < n; i++)
        {
            int slot = start + i < n ? start + i : start + i - n;
            if (OwnerOf(slot) == 0 && TryClaimSlot(slot, owner)) return slot;
        }
        return -1;
    }

    // A shared cursor walks the table round-robin, which by itself hands out never-used and
    // long-released slots first. A free slot released within the last half-table of releases is
    // passed over on the way; when nothing older is free, the least recently released of the
    // free slots seen is taken. Exact LRR would need a shared free list, which a crashed
    // process could leave corrupt; this needs only the per-slot release stamp.
    private int ClaimLeastRecentlyReleased(long owner)
    {
        int n = SlotCount;
        long now = Volatile.Read(ref *Header(OffReleaseSeq));
        long recent = now - Math.Max(1, n / 2);
        int start = (int)((ulong)(Interlocked.Increment(ref *Header(OffCursor)) - 1) % (ulong)n);
        for (int attempt = 0; attempt < 4; attempt++)
        {
            int best = -1;
            long bestStamp = long.MaxValue;
            for (int i = 0; i < n; i++)
            {
                int slot = start + i < n ? start + i : start + i - n;
                if (OwnerOf(slot) != 0) continue;
                long stamp = ReleasedAt(slot);
                // Never released (0) or released long enough ago: take it without looking further.
                if (stamp == 0 || stamp <= recent)
                {
                    if (TryClaimSlot(slot, owner)) { MoveCursorPast(slot); return slot; }
                    continue;
                }
                if (stamp < bestStamp) { best = slot; bestStamp = stamp; }
            }
            if (best < 0) return -1;
            if (TryClaimSlot(best, owner)) { MoveCursorPast(best); return best; }
        }
        return ClaimFrom(start, owner);
    }

    private void MoveCursorPast(int slot) => Volatile.Write(ref *Header(OffCursor), slot + 1);

    /// <summary>Frees a slot held by <paramref name="owner"/>; false if it was not held by it.</summary>
    public bool Release(int slot, long owner)
    {
        if (!BeginRelease(slot, owner)) return false;
        EndRelease(slot);
        return true;
    }

    /// <summary>Marks a slot of <paramref name="owner"/> as being released by this process (false
    /// when it is not theirs): until <see cref="EndRelease"/> no one can claim it.</summary>
    public bool BeginRelease(int slot, long owner)
    {
        // Unsealed first: from here to the end of the release every state names one process (the
        // holder, then this releaser) and is judged by its liveness, so a kill anywhere leaves a
        // slot the next process reclaims. (Unsealing a slot lost to another releaser meanwhile is
        // harmless: a zero seal only means "judge the owner".)
        if (OwnerOf(slot) != owner) return false;
        Volatile.Write(ref *SealWord(slot), 0);
        long releasing = ProcessIdentity.Current | ProcessIdentity.Releasing;
        if (Interlocked.CompareExchange(ref *Owner(slot), releasing, owner) != owner) return false;
        // The releaser's own identity: if it dies before the end, its slot is reclaimed like any
        // dead holder's (a reclaimer may be of another pid namespace than the holder was).
        Volatile.Write(ref *PidNamespaceWord(slot), ProcessIdentity.PidNamespace);
        Reseal(slot, releasing);
        return true;
    }

    // The second half of a release, done only by the one whose swap to releasing succeeded, so a
    // stale release can never touch the words of the slot's next holder.
    public void EndRelease(int slot)
    {
        Volatile.Write(ref *SealWord(slot), 0); // first: half released is judged by the releaser
        long seq = Interlocked.Increment(ref *Header(OffReleaseSeq));
        Volatile.Write(ref *Released(slot), seq);
        Volatile.Write(ref *PidNamespaceWord(slot), 0);
        Volatile.Write(ref *Owner(slot), 0);
        LowerHint(slot);
    }

    private void LowerHint(int slot)
    {
        long hint;
        while ((hint = Volatile.Read(ref *Header(OffLowHint))) > slot)
            if (Interlocked.CompareExchange(ref *Header(OffLowHint), slot, hint) == hint) break;
    }

    /// <summary>Reclaims every slot whose holder is no longer running; returns those slots.
    /// <paramref name="beforeRelease"/> runs for each while the slot is this reclaimer's alone
    /// (no one can claim it) and its journal record is still the dead holder's: the place to
    /// release its DHCP lease and take its address off the host.</summary>
    public List<int> ReclaimDead(Action<int>? beforeRelease = null)
    {
        if (Damage() is not null) return [];
        var verdicts = new Dictionary<(long, long), bool>();
        var reclaimed = new List<int>();
        for (int slot = 0; slot < SlotCount; slot++)
        {
            long owner = OwnerOf(slot);
            // A damaged slot, or a half-written one of another namespace, cannot tell who holds
            // it: it is left alone.
            if (owner == 0 || JudgeIn(slot, owner) is not { } pidNamespace) continue;
            if (!verdicts.TryGetValue((owner, pidNamespace), out bool alive)) verdicts[(owner, pidNamespace)] = alive = ProcessIdentity.IsAlive(owner, pidNamespace);
            if (alive) continue;
            if (!BeginRelease(slot, owner)) continue;
            beforeRelease?.Invoke(slot);
            EndRelease(slot);
            reclaimed.Add(slot);
        }
        return reclaimed;
    }

    /// <summary>Whether someone may hold the slot: it has an owner, or its words are damaged.</summary>
    public bool MayBeHeld(int slot) => OwnerOf(slot) != 0 || Volatile.Read(ref *SealWord(slot)) != 0;

    /// <summary>Slots someone may hold, and their owners (0 for a damaged free-looking slot), for
    /// status, gc and tests.</summary>
    public IEnumerable<(int Slot, long Owner)> HeldSlots()
    {
        for (int slot = 0; slot < SlotCount; slot++)
            if (MayBeHeld(slot)) yield return (slot, OwnerOf(slot));
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
