using SockShim.Stack.Sources;
using System.Net;
using SockShim.Stack.Addressing;
using SockShim.Stack.Claims;
using SockShim.Stack.Configuration;
using SockShim.Stack.Policy;
using SockShim.Stack.Pools;
using SockShim.Tests.Network;

namespace SockShim.Tests.Stack;

/// <summary>A static pool's prefetch: addresses kept claimed and on the host for the next sockets.</summary>
public class ProvisionedReserveTests
{
    [Test]
    public void The_reserve_fills_to_its_capacity_keeps_released_slots_while_it_has_room_and_gives_everything_back_when_drained()
    {
        var onHost = new HashSet<int>();
        int next = 0, limit = 5; // the "pool" has 5 slots
        var reserve = new ProvisionedReserve(3, () => next < limit ? Add(onHost, next++) : -1, slot => onHost.Remove(slot), schedule: work => work());

        Assert.That(reserve.TryTake(out _), Is.False, "nothing is ready before the first request");
        Assert.That(reserve.Count, Is.EqualTo(3), "the first request starts the top-up");
        Assert.That(onHost, Is.EquivalentTo(new[] { 0, 1, 2 }));

        Assert.That(reserve.TryTake(out int a), Is.True);
        Assert.That(a, Is.Zero, "oldest first");
        Assert.That(onHost, Does.Contain(a), "a taken slot is on the host already");
        Assert.That(reserve.Count, Is.EqualTo(3), "topped up behind the taker");
        Assert.That(reserve.TryKeep(a), Is.False, "full: a released slot goes");

        var taken = new List<int>();
        for (int i = 0; i < 3; i++)
        {
            Assert.That(reserve.TryTake(out int slot), Is.True);
            taken.Add(slot);
        }
        Assert.That(taken, Is.EqualTo(new[] { 1, 2, 3 }));
        int b = taken[0], c = taken[1];
        Assert.That(reserve.Count, Is.EqualTo(1), "the pool ran dry at 5 slots: the top-up stops, it does not spin");
        Assert.That(reserve.TryKeep(c), Is.True, "room: a released slot stays on the host for the next socket");
        Assert.That(reserve.Count, Is.EqualTo(2));

        reserve.Drain(TimeSpan.FromSeconds(1));
        Assert.That(reserve.Count, Is.Zero);
        Assert.That(onHost, Is.EquivalentTo(new[] { 0, 1, 3 }), "everything ready was given back; what sockets hold stays");
        Assert.That(reserve.TryKeep(b), Is.False, "a drained reserve keeps nothing");
        Assert.That(reserve.TryTake(out _), Is.False);
        Assert.That(reserve.Count, Is.Zero, "and refills nothing");
    }

    [Test]
    public void A_pool_with_prefetch_hands_out_ready_addresses_and_leaves_nothing_on_the_host_when_disposed()
    {
        var definition = AddressRangeTests.Definition("198.51.100.0/28", exclude: [], max: 16, strategy: AllocationStrategy.LeastRecentlyReleased);
        string dir = Path.Combine("/dev/shm", "sockshim-test-reserve-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var provisioner = new RecordingProvisioner();
        try
        {
            var pool = TestPools.Static(definition, provisioner, LeaseTable.Open(Path.Combine(dir, "r.leases"), definition.Count), prefetch: 4);
            Assert.That(pool.TryAcquire("first", out var first, out var error), Is.True, error?.Message);
            Assert.That(DhcpLan.Eventually(() => pool.ReadyLeases == 4, TimeSpan.FromSeconds(5)), Is.True, "4 ready behind the first socket");
            Assert.That(provisioner.OnHost(), Has.Count.EqualTo(5));
            Assert.That(pool.Table.HeldSlots().Count(h => pool.Table.SocketOf(h.Slot) == LeaseTable.ReadySocket), Is.EqualTo(4), "marked ready for `sockshim status`");
            var ready = provisioner.OnHost().Except([first.Address]).ToList();

            var taken = new List<Lease>();
            for (int i = 0; i < 4; i++)
            {
                Assert.That(pool.TryAcquire("from the reserve", out var lease, out error), Is.True, error?.Message);
                taken.Add(lease);
            }
            Assert.That(taken.Select(l => l.Address), Is.EquivalentTo(ready), "the next sockets got the addresses already on the host");
            Assert.That(DhcpLan.Eventually(() => pool.ReadyLeases == 4 && provisioner.OnHost().Count == 9, TimeSpan.FromSeconds(5)), Is.True, "topped up again");
            Assert.That(pool.Table.HeldSlots().Count(), Is.EqualTo(9), "ready addresses are this process's in the host-wide table");

            foreach (var lease in taken) lease.Release();
            Assert.That(DhcpLan.Eventually(() => provisioner.OnHost().Count == 5, TimeSpan.FromSeconds(5)), Is.True, "with the reserve full, released addresses leave the host");

            pool.Dispose();
            Assert.That(provisioner.OnHost(), Is.Empty, "disposal takes the live and the ready addresses off the host");
            Assert.That(provisioner.Added, Is.EqualTo(provisioner.Removed), "each address removed once per add");
        }
        finally { Directory.Delete(dir, true); }
    }

    private static int Add(HashSet<int> onHost, int slot)
    {
        onHost.Add(slot);
        return slot;
    }
}

/// <summary>Stands in for a provisioner that puts addresses on an interface: records what is there.</summary>
internal sealed class RecordingProvisioner : SockShim.Stack.Provisioning.IAddressProvisioner
{
    private readonly HashSet<IPAddress> _onHost = new();
    public int Added, Removed;
    public ProvisionerKind Kind => ProvisionerKind.Netlink;
    public string Name => "recording";
    public string? CheckDestination(IPAddress destination, string pool) => null;
    public SockShim.Stack.Errors.StackError? Provision(IPAddress address, string pool, TimeSpan? lifetime = null)
    {
        lock (_onHost) { _onHost.Add(address); Added++; }
        return null;
    }
    public void Deprovision(IPAddress address)
    {
        lock (_onHost) { _onHost.Remove(address); Removed++; }
    }
    public List<IPAddress> OnHost() { lock (_onHost) return _onHost.ToList(); }
}
