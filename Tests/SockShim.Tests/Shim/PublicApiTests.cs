using PublicApiGenerator;

namespace SockShim.Tests.Shim;

/// <summary>Shim's public surface is locked: a change shows as a diff of Shim/PublicAPI.approved.txt.</summary>
public class PublicApiTests
{
    [Test]
    public void The_public_api_matches_the_approved_file()
    {
        string approvedPath = Path.Combine(RepoPaths.Root, "Shim", "PublicAPI.approved.txt");
        string actual = typeof(TupleSocket).Assembly.GeneratePublicApi(new ApiGeneratorOptions { IncludeAssemblyAttributes = false }).ReplaceLineEndings("\n");
        string approved = File.Exists(approvedPath) ? File.ReadAllText(approvedPath).ReplaceLineEndings("\n") : "";
        if (actual != approved)
        {
            File.WriteAllText(approvedPath.Replace(".approved.", ".received."), actual);
            Assert.Fail($"Shim's public API changed: compare {approvedPath.Replace(".approved.", ".received.")} with {approvedPath} and, if the change is meant, copy it over.");
        }
    }
}
