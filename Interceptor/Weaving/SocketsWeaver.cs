using Mono.Cecil;
using SockShim.Interceptor.Weaving.Steps;

namespace SockShim.Interceptor.Weaving;

/// <summary>Weaves one runtime's System.Net.Sockets.dll: a list of named steps over one module.</summary>
public static class SocketsWeaver
{
    public static IReadOnlyList<IWeaveStep> Steps(string runtimeVersion, FileInfo source) =>
    [
        new AddHookSlots(),
        new AddStateField(),
        new HookConstructor(),
        new HookBind(),
        new HookSyncConnect(),
        new HookAsyncConnect(),
        new HookSendTo(),
        new HookDispose(),
        new HookUseAfterClose(),
        new StampIdentity(runtimeVersion, source),
        new WireOnFirstUse(),
    ];

    /// <summary>Reads <paramref name="source"/>, applies every step, writes <paramref name="output"/>.
    /// Returns the woven methods' names. Throws <see cref="WeaveException"/> naming what is missing.</summary>
    public static IReadOnlyList<string> Weave(string source, string output, string runtimeVersion, Action<string>? progress = null)
    {
        using var resolver = new DefaultAssemblyResolver();
        // Only the source's own directory (the runtime's, or the private copies a self-contained
        // app's weave is keyed by): Cecil would also search "." and "bin" of the working
        // directory, wherever root happens to stand (the fifth review).
        foreach (var directory in resolver.GetSearchDirectories()) resolver.RemoveSearchDirectory(directory);
        resolver.AddSearchDirectory(Path.GetDirectoryName(Path.GetFullPath(source))!);
        using var module = ModuleDefinition.ReadModule(source, new ReaderParameters { AssemblyResolver = resolver, ReadSymbols = false, InMemory = true });
        var context = new WeaveContext(module);
        foreach (var step in Steps(runtimeVersion, new FileInfo(source)))
        {
            progress?.Invoke(step.Name);
            step.Apply(context);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        module.Write(output);
        return context.WovenMethods.Select(m => m.FullName).ToList();
    }
}
