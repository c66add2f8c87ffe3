using System.Security.Cryptography;
using System.Text;
using Mono.Cecil;

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
        AddLiteral(HookSlots.SourceRuntimeVersion, runtimeVersion);
        AddLiteral(HookSlots.SourceMvid, sourceMvid.ToString());
        AddLiteral(HookSlots.WeaverVersion, HookSlots.CurrentWeaverVersion);
        AddLiteral(HookSlots.SourceFileLength, source.Length.ToString());
        AddLiteral(HookSlots.SourceFileTime, source.LastWriteTimeUtc.Ticks.ToString());

        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{sourceMvid}|{HookSlots.CurrentWeaverVersion}"));
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
