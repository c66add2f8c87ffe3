using SockShim.Interceptor.Contract;
using System.Security.Cryptography;
using System.Text;
using Mono.Cecil;
using SockShim.Interceptor.Store;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>Records the source runtime version and MVID in the hook class (the startup hook
/// refuses a woven assembly from another runtime), gives the module a new MVID derived from the
/// source and the weaver version, and marks the image IL-only: the ReadyToRun code and the
/// strong-name signature of the source no longer match the IL.
/// (crossgen2 may compile it to ReadyToRun again afterwards.)</summary>
public sealed class StampIdentity(string runtimeVersion, FileInfo source) : IWeaveStep
{
    public string Name => "stamp identity";

    public void Apply(WeaveContext c)
    {
        var sourceMvid = c.Module.Mvid;
        AddLiteral(HookContract.SourceRuntimeVersion, runtimeVersion);
        AddLiteral(HookContract.SourceMvid, sourceMvid.ToString());
        AddLiteral(HookContract.WeaverVersion, HookContract.CurrentWeaverVersion);
        // Of the file the path leads to, as the app's check stats it (InstalledRuntime.SourceFile).
        var file = InstalledRuntime.SourceFile(source.FullName);
        AddLiteral(HookContract.SourceFileLength, file.Length.ToString());
        AddLiteral(HookContract.SourceFileTime, file.LastWriteTimeUtc.Ticks.ToString());

        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{sourceMvid}|{HookContract.CurrentWeaverVersion}"));
        c.Module.Mvid = new Guid(hash.AsSpan(0, 16));
        c.Module.Attributes &= ~(ModuleAttributes.ILLibrary | ModuleAttributes.StrongNameSigned);
        c.Module.Attributes |= ModuleAttributes.ILOnly;
        // A ReadyToRun image carries an OS-specific machine type (AMD64 xor 0x7B79 on Linux); an
        // IL-only image must say AnyCPU, or the loader rejects it as a bad format.
        c.Module.Architecture = TargetArchitecture.I386;

        void AddLiteral(string name, string value) =>
            c.Hooks.Fields.Add(new FieldDefinition(name, FieldAttributes.Public | FieldAttributes.Static | FieldAttributes.Literal | FieldAttributes.HasDefault, c.Module.TypeSystem.String) { Constant = value });
    }
}
