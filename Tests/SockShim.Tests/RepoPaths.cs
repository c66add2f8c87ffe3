namespace SockShim.Tests;

internal static class RepoPaths
{
    /// <summary>The checkout the tests were built from (the folder holding SockShim.sln).</summary>
    public static string Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "SockShim.sln"))) return dir.FullName;
            throw new DirectoryNotFoundException("SockShim.sln not found above " + AppContext.BaseDirectory);
        }
    }
}
