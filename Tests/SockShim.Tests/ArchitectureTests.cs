using ArchUnitNET.Domain;
using ArchUnitNET.Fluent;
using ArchUnitNET.Loader;
using ArchUnitNET.NUnit;
using static ArchUnitNET.Fluent.ArchRuleDefinition;

namespace SockShim.Tests;

/// <summary>
/// The layering of architecture.md, locked: read top to bottom, each layer of the Stack uses only
/// the layers below it; Shim and Stack never reach into the Interceptor; and in the front ends
/// (Shim, the hooks) only the binder binds a socket.
/// </summary>
public class ArchitectureTests
{
    private static readonly Architecture Architecture = new ArchLoader().LoadAssemblies(
        typeof(SockShim.Stack.AddressStack).Assembly,
        typeof(SockShim.TupleSocket).Assembly,
        typeof(SockShim.Interceptor.Hooks.HookInstaller).Assembly,
        typeof(SockShim.Interceptor.Cli.SockShimCli).Assembly,
        // The bind calls the front ends may not make are members of these.
        typeof(System.Net.Sockets.Socket).Assembly, typeof(Tmds.Linux.LibC).Assembly).Build();

    /// <summary>The Stack's layers, highest first. Leaves are last and may use each other.</summary>
    internal static readonly (string Name, string Namespace)[] StackLayers =
    [
        ("the address stack", @"^SockShim\.Stack$"),
        ("pools", @"^SockShim\.Stack\.Pools$"),
        ("address sources", @"^SockShim\.Stack\.Sources$"),
        ("the DHCP client", @"^SockShim\.Stack\.Dhcp$"),
        ("provisioners", @"^SockShim\.Stack\.Provisioning(\..+)?$"),
        ("the claim table", @"^SockShim\.Stack\.Claims$"),
        ("configuration", @"^SockShim\.Stack\.Configuration$"),
        ("socket policy", @"^SockShim\.Stack\.Policy$"),
        ("leaves", @"^SockShim\.Stack\.(Wire|Addressing|Interop|Telemetry|Errors)$"),
    ];

    private static IObjectProvider<IType> Layer(int i) =>
        Types().That().ResideInNamespaceMatching(StackLayers[i].Namespace).As(StackLayers[i].Name);

    public static IEnumerable<TestCaseData> LowerLayers() =>
        Enumerable.Range(1, StackLayers.Length - 1).Select(i => new TestCaseData(i).SetName($"{StackLayers[i].Name} use no layer above them"));

    [TestCaseSource(nameof(LowerLayers))]
    public void A_layer_uses_only_the_layers_below_it(int layer)
    {
        var above = Enumerable.Range(0, layer).Select(StackLayers.ElementAt).ToList();
        string pattern = "(" + string.Join("|", above.Select(l => l.Namespace.Trim('^', '$'))) + ")";
        Types().That().Are(Layer(layer)).Should()
            .NotDependOnAny(Types().That().ResideInNamespaceMatching($"^{pattern}$").As(string.Join(", ", above.Select(l => l.Name))))
            .Check(Architecture);
    }

    [Test]
    public void Every_stack_type_is_in_a_layer()
    {
        var all = string.Join("|", StackLayers.Select(l => l.Namespace.Trim('^', '$')));
        Types().That().ResideInAssembly(typeof(SockShim.Stack.AddressStack).Assembly).And().AreNotNested()
            .And().DoNotHaveFullNameContaining("<").And().DoNotHaveFullNameContaining("Microsoft.CodeAnalysis").And().DoNotHaveFullNameContaining("System.Runtime.CompilerServices")
            .Should().ResideInNamespaceMatching($"^({all})$").Check(Architecture);
    }

    [Test]
    public void The_claim_table_knows_nothing_of_pools_dhcp_or_configuration()
    {
        Types().That().ResideInNamespaceMatching(@"^SockShim\.Stack\.Claims$").Should()
            .NotDependOnAny(Types().That().ResideInNamespaceMatching(@"^SockShim\.Stack\.(Pools|Sources|Dhcp|Configuration)$"))
            .Check(Architecture);
    }

    [Test]
    public void Shim_and_Stack_never_reach_into_the_Interceptor()
    {
        Types().That().ResideInAssembly(typeof(SockShim.Stack.AddressStack).Assembly).Or().ResideInAssembly(typeof(SockShim.TupleSocket).Assembly).Should()
            .NotDependOnAny(Types().That().ResideInNamespaceMatching(@"^SockShim\.Interceptor(\..+)?$"))
            .Check(Architecture);
    }

    /// <summary>`sockshim compare` is an API tests call too; the command line uses it, not the reverse.</summary>
    [Test]
    public void The_interceptors_apis_do_not_depend_on_the_command_line()
    {
        Types().That().ResideInNamespaceMatching(@"^SockShim\.Interceptor\.(Compare|Launch|Weaving|Store|Host)(\..+)?$").Should()
            .NotDependOnAny(Types().That().ResideInNamespaceMatching(@"^SockShim\.Interceptor\.Cli$"))
            .Check(Architecture);
    }

    [Test]
    public void In_the_front_ends_only_the_binder_binds_a_socket()
    {
        var binds = MethodMembers().That().HaveFullNameContaining("System.Net.Sockets.Socket::Bind(")
            .Or().HaveFullNameContaining("Tmds.Linux.LibC::bind(").As("Socket.Bind and bind(2)");
        Types().That().ResideInAssembly(typeof(SockShim.TupleSocket).Assembly).Or().ResideInAssembly(typeof(SockShim.Interceptor.Hooks.HookInstaller).Assembly)
            .And().DoNotResideInNamespaceMatching(@"^SockShim\.Binding$")
            .Should().NotCallAny(binds).Check(Architecture);
    }
}
