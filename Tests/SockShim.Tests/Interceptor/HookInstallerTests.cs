using System.Reflection;
using System.Reflection.Emit;
using SockShim.Interceptor.Contract;
using SockShim.Interceptor.Hooks;

namespace SockShim.Tests.Interceptor;

/// <summary>The installer is handed the woven type instead of looking it up by name: it fills
/// only the type of that name in the System.Net.Sockets this process loaded.</summary>
public class HookInstallerTests
{
    [Test]
    [CancelAfter(10_000)]
    public void The_installer_refuses_a_type_that_is_not_the_woven_one()
    {
        // Another type of System.Net.Sockets (the test host's copy is not woven).
        var other = Assert.Throws<InvalidOperationException>(() => HookInstaller.Install(typeof(System.Net.Sockets.Socket)));
        Assert.That(other!.Message, Does.Contain("is not the woven type"));
        // The woven type's name, in an assembly of its own.
        var module = AssemblyBuilder.DefineDynamicAssembly(new AssemblyName("Impostor"), AssemblyBuilderAccess.Run).DefineDynamicModule("Impostor");
        var impostor = module.DefineType(HookContract.FullTypeName, TypeAttributes.Public | TypeAttributes.Abstract | TypeAttributes.Sealed).CreateType();
        Assert.That(impostor.FullName, Is.EqualTo(HookContract.FullTypeName));
        var named = Assert.Throws<InvalidOperationException>(() => HookInstaller.Install(impostor));
        Assert.That(named!.Message, Does.Contain("is not the woven type"));
    }
}
