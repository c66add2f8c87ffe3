using System.CommandLine;
using SockShim.Interceptor.Weaving;
using SockShim.Interceptor.Weaving.Scopes;

namespace SockShim.Interceptor.Cli;

/// <summary><c>sockshim weave-attributes ASSEMBLY</c>: the build step behind [NewAddressPerSocket]
/// (SockShim.Attributes.targets runs it on the compiled assembly before it is copied out).</summary>
internal static class WeaveAttributesCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var assembly = new Argument<string>("assembly") { Description = "the compiled assembly (obj/.../App.dll); rewritten in place with its .pdb" };
        var command = new Command("weave-attributes", "Make each [NewAddressPerSocket] method of an assembly run in an AddressScope (for `sockshim run --mode attribute`)") { assembly };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(assembly)!;
            if (!File.Exists(path))
            {
                error.WriteLine($"sockshim weave-attributes: no assembly at {path}");
                return 2;
            }
            try
            {
                var woven = ScopeWeaver.Weave(path);
                output.WriteLine($"sockshim: {woven.Count} method(s) of {Path.GetFileName(path)} run in an address scope");
                return 0;
            }
            catch (WeaveException ex)
            {
                error.WriteLine($"sockshim weave-attributes: {ex.Message}");
                return 1;
            }
        });
        return command;
    }
}
