using System.CommandLine;
using SockShim.Interceptor.Cli;
using SockShim.Interceptor.Launch;
using SockShim.Interceptor.Store;

// The fast `sockshim` (Native AOT). `run` is handled here when every runtime's woven copy is in
// the cache: the same checks as the tool's (settings, the app's deployment, the trust of the
// tool directory and the cache, each copy's recorded identity), then the command is exec'd in
// this process. Any other verb, and a `run` that needs weaving, is handed over whole to the
// managed tool beside this file (dotnet SockShim.Interceptor.dll, same arguments), which does
// the heavy work (Mono.Cecil, crossgen2, compare, serve).
if (args.Length > 0 && args[0] == "run")
{
    try
    {
        var root = new RootCommand("SockShim: one IP address per socket for .NET processes");
        root.Subcommands.Add(RunCommand.Create(new StackOptions(), Console.Out, Console.Error, weaver: null));
        return Invocation.Invoke(root, args, Console.Out, Console.Error);
    }
    catch (WeavingNeededException ex)
    {
        // --verbose (before the command's own arguments) says why the tool takes over.
        if (args.TakeWhile(a => a != "--").Contains("--verbose")) Console.Error.WriteLine($"sockshim: {ex.Message}: the managed tool weaves it");
    }
}
string tool = Path.Combine(AppContext.BaseDirectory, "SockShim.Interceptor.dll");
int failed = Exec.Replace(["dotnet", tool, .. args], new Dictionary<string, string?>(), out string why);
Console.Error.WriteLine($"sockshim: {why}; the managed tool is started with `dotnet` from PATH");
return failed;
