global using static SockShim.Berkeley;
