using SockShim.Stack.Addressing;
using SockShim.Stack.Claims;

namespace SockShim.Tests.Stack;

/// <summary>
/// Words written into a live table by someone other than its claim code (a stray process of the
/// account, a bug): a forged owner is never reclaimed, a zeroed owner never handed out again, a
/// broken header makes the table refuse claims, hints out of range still give slots in range.
/// Written through the file, as another process would, not through the table's own methods.
/// </summary>
[CancelAfter(60_000)]
public class TableIntegrityTests
{
    private string _dir = "";
    private const int Slots = 4;

    [SetUp]
    public void MakeDirectory() => _dir = Directory.CreateTempSubdirectory("sockshim-integrity-").FullName;

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    private string TablePath => Path.Combine(_dir, "t.leases");

    private void Write(long offset, long value)
    {
        using var file = new FileStream(TablePath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        file.Position = offset;
        file.Write(BitConverter.GetBytes(value));
    }

    private static long OwnerOffset(int slot) => 64 + 64L * slot;

    // The highest pid a token holds (2^22 - 1), above this machine's pid_max: not running.
    private const long DeadToken = (4_194_303L << 32) | 12345;
    private static long Marked(long token, long pidNamespace) => token | ProcessIdentity.NamespaceMark(pidNamespace);
    private static long SealOffset(int slot) => 64 + 64L * slot + 56;
    private static long PidNamespaceOffset(int slot) => 64 + 64L * slot + 48;

    [Test]
    public void A_dead_token_written_over_a_live_claim_is_not_reclaimed()
    {
        using var table = LeaseTable.Open(TablePath, Slots);
        int slot = table.Claim(AllocationStrategy.Sequential, ProcessIdentity.Current);
        Assert.That(slot, Is.Zero);
        Write(OwnerOffset(slot), DeadToken);

        Assert.That(table.OwnerOf(slot), Is.EqualTo(DeadToken), "the forged word is in the mapping");
        Assert.That(table.ReclaimDead(), Is.Empty, "a slot whose seal does not match is not the forger's to free");
        Assert.That(table.HolderMayRun(slot, DeadToken), Is.True, "cannot tell is alive");
        var taken = Enumerable.Range(0, Slots).Select(_ => table.Claim(AllocationStrategy.Sequential, ProcessIdentity.Current)).ToList();
        Assert.That(taken, Does.Not.Contain(slot).And.Contains(-1), "the slot is never handed out again while damaged");
    }

    [Test]
    public void A_genuine_claim_of_a_dead_process_is_still_reclaimed()
    {
        using var table = LeaseTable.Open(TablePath, Slots);
        // The claim a process that then died made: its own words, sealed.
        Assert.That(table.TryClaimSlot(2, DeadToken), Is.True);
        Assert.That(table.ReclaimDead(), Is.EqualTo(new[] { 2 }), "the seal is kept by a real claim");
        Assert.That(table.MayBeHeld(2), Is.False);
    }

    [Test]
    public void A_zeroed_owner_of_a_live_claim_is_never_handed_out()
    {
        using var table = LeaseTable.Open(TablePath, Slots);
        int held = table.Claim(AllocationStrategy.Sequential, ProcessIdentity.Current);
        Write(OwnerOffset(held), 0);
        Assert.That(table.MayBeHeld(held), Is.True, "owner 0 with a seal left: cannot tell");
        var taken = Enumerable.Range(0, Slots).Select(_ => table.Claim(AllocationStrategy.LeastRecentlyReleased, ProcessIdentity.Current)).ToList();
        Assert.That(taken, Does.Not.Contain(held));
        Assert.That(taken.Count(s => s >= 0), Is.EqualTo(Slots - 1));
    }

    [Test]
    public void A_broken_header_refuses_every_claim_until_it_is_whole()
    {
        using var table = LeaseTable.Open(TablePath, Slots);
        byte[] header = File.ReadAllBytes(TablePath)[..16];
        Write(0, 0x4141414141414141);
        Assert.That(table.Damage(), Does.Contain($"lease table {TablePath} is damaged").And.Contain("remove the file when no process uses the pool"));
        Assert.That(table.Claim(AllocationStrategy.Random, ProcessIdentity.Current), Is.EqualTo(-1));
        using (var opened = LeaseTable.Open(TablePath, Slots))
        {
            Assert.That(opened.Claim(AllocationStrategy.Sequential, ProcessIdentity.Current), Is.EqualTo(-1), "a new opener gets nothing either");
            Assert.That(opened.ReclaimDead(), Is.Empty, "nor reclaims anything by it");
        }

        Write(0, BitConverter.ToInt64(header, 0));
        Assert.That(table.Damage(), Is.Null);
        Assert.That(table.Claim(AllocationStrategy.Random, ProcessIdentity.Current), Is.InRange(0, Slots - 1));
    }

    [TestCase(long.MaxValue)]
    [TestCase(long.MinValue)]
    [TestCase(-1L)]
    public void Hints_and_counters_out_of_range_still_give_slots_in_range(long garbage)
    {
        using var table = LeaseTable.Open(TablePath, Slots);
        foreach (long offset in new long[] { 24, 32, 40, 48 }) Write(offset, garbage); // release sequence, cursor, low hint, IAID counter
        foreach (var strategy in Enum.GetValues<AllocationStrategy>())
        {
            int slot = table.Claim(strategy, ProcessIdentity.Current);
            Assert.That(slot, Is.InRange(0, Slots - 1), strategy.ToString());
            Assert.That(table.Release(slot, ProcessIdentity.Current), Is.True);
        }
    }

    [Test]
    public void A_journal_write_after_the_slot_was_given_back_leaves_it_free()
    {
        using var table = LeaseTable.Open(TablePath, Slots);
        long me = ProcessIdentity.Current;
        int slot = table.Claim(AllocationStrategy.Sequential, me);
        table.SetDhcp(slot, me, 0xC0000201, 7, 1_000);
        Assert.That(table.DhcpOf(slot), Is.EqualTo(((uint)0xC0000201, 7u, 1_000L)));
        Assert.That(table.Release(slot, me), Is.True);

        // A renewal handled just after the socket gave its lease back.
        table.SetExpiry(slot, me, 2_000);
        table.SetDhcp(slot, me, 0xC0000201, 7, 2_000);
        Assert.That(table.MayBeHeld(slot), Is.False, "the free slot was not sealed by the late write");
        Assert.That(table.TryClaimSlot(slot, me), Is.True, "and can be claimed again");
        table.SetExpiry(slot, DeadToken, 3_000);
        Assert.That(table.DhcpOf(slot), Is.Null, "another owner's journal write does not touch it");
        Assert.That(table.IsSound(slot, me), Is.True);
    }

    // What a process killed between a claim's (or a release's) first write and its seal leaves:
    // the owner word set, no seal. Judged by the owner when it carries this namespace's mark.
    [TestCase(false, TestName = "A claim cut short by a kill is reclaimed")]
    [TestCase(true, TestName = "A release cut short by a kill before its seal is reclaimed")]
    public void A_slot_left_half_written_by_a_dead_process_is_reclaimed(bool releasing)
    {
        using var table = LeaseTable.Open(TablePath, Slots);
        long dead = Marked(DeadToken, ProcessIdentity.PidNamespace) | (releasing ? ProcessIdentity.Releasing : 0);
        Write(OwnerOffset(1), dead);
        Write(PidNamespaceOffset(1), 0);
        Assert.That(table.MayBeHeld(1), Is.True);
        Assert.That(table.HolderMayRun(1, dead), Is.False, "a half-written slot of a dead process of this namespace");
        Assert.That(table.ReclaimDead(), Is.EqualTo(new[] { 1 }));
        Assert.That(table.MayBeHeld(1), Is.False);
    }

    [Test]
    public void A_half_written_slot_of_another_namespace_or_a_live_process_is_left_alone()
    {
        using var table = LeaseTable.Open(TablePath, Slots);
        long otherNamespace = ProcessIdentity.PidNamespace + 1;
        while (ProcessIdentity.NamespaceMark(otherNamespace) == ProcessIdentity.NamespaceMark(ProcessIdentity.PidNamespace)) otherNamespace++;
        Write(OwnerOffset(0), Marked(DeadToken, otherNamespace));
        Write(OwnerOffset(1), ProcessIdentity.Current);
        Assert.That(table.ReclaimDead(), Is.Empty, "another namespace's pid means nothing here; a live claimer is alive");
        Assert.That(table.HolderMayRun(0, Marked(DeadToken, otherNamespace)), Is.True);
    }

    [Test]
    public void A_forged_owner_over_a_sealed_claim_is_still_left_alone_even_with_this_namespaces_mark()
    {
        using var table = LeaseTable.Open(TablePath, Slots);
        int slot = table.Claim(AllocationStrategy.Sequential, ProcessIdentity.Current);
        Write(OwnerOffset(slot), Marked(DeadToken, ProcessIdentity.PidNamespace));
        Assert.That(table.ReclaimDead(), Is.Empty, "the live claim's seal is still there and does not match");
        Write(SealOffset(slot), 0x5A5A5A5A5A5A5A5A);
        Assert.That(table.ReclaimDead(), Is.Empty);
    }
}
