// The caller's variables the launcher (or the clone's script) kept from this process's start
// (see CallerVariables), back for the app it starts.
SockShim.Interceptor.Launch.CallerVariables.Restore();
return SockShim.Interceptor.Cli.SockShimCli.Run(args, Console.Out, Console.Error);
