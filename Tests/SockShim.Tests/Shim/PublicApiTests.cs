using PublicApiGenerator;

namespace SockShim.Tests.Shim;

/// <summary>The public surfaces of Shim and Stack are locked: a change shows as a diff of the
/// project's PublicAPI.approved.txt. Stack shows what apps and the Interceptor need; the rest is internal.</summary>
public class PublicApiTests
{
    [TestCase("Shim", typeof(TupleSocket))]
    [TestCase("Stack", typeof(SockShim.Stack.AddressStack))]
    public void The_public_api_matches_the_approved_file(string project, Type inAssembly)
    {
        string approvedPath = Path.Combine(RepoPaths.Root, project, "PublicAPI.approved.txt");
        string actual = inAssembly.Assembly.GeneratePublicApi(new ApiGeneratorOptions { IncludeAssemblyAttributes = false }).ReplaceLineEndings("\n");
        string approved = File.Exists(approvedPath) ? File.ReadAllText(approvedPath).ReplaceLineEndings("\n") : "";
        if (actual != approved)
        {
            File.WriteAllText(approvedPath.Replace(".approved.", ".received."), actual);
            Assert.Fail($"{project}'s public API changed: compare {approvedPath.Replace(".approved.", ".received.")} with {approvedPath} and, if the change is meant, copy it over.");
        }
    }
}
