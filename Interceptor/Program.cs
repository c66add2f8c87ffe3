return SockShim.Interceptor.Cli.SockShimCli.Run(args, Console.Out, Console.Error);
