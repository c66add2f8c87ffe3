global using static Tmds.Linux.LibC;
