using Mono.Cecil;
using Mono.Cecil.Cil;
using SockShim.Interceptor.Contract;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>
/// Makes the woven type wire its own slots on first use: its static constructor (which the
/// runtime runs before the first read of any slot, so before the first socket's hook) ends with
/// <code>
/// string wire = Environment.GetEnvironmentVariable("SOCKSHIM_WIRE");
/// if (wire != null)
/// {
///     var d = (Delegate[])AssemblyLoadContext.Default.LoadFromAssemblyPath(wire)
///         .GetType("SockShimWire", true).GetMethod("Wire")
///         .Invoke(null, new object[] { typeof(SockShimHooks), AddressScope, "10.0.12", "569344", "6389...", "mvid" });
///     MapFamily = (Func&lt;...&gt;)d[0]; Created = (Action&lt;...&gt;)d[1]; ...   // HookContract.SlotNames' order
/// }
/// </code>
/// so an app started without the startup hook loads SockShim only when it first touches a
/// socket, and the wiring needs no reflection over the woven type: its identity (the literals
/// StampIdentity wrote) comes as arguments, and the slots are stored here. Runs last.
/// </summary>
public sealed class WireOnFirstUse : IWeaveStep
{
    public string Name => "wire the slots on first use";

    public void Apply(WeaveContext c)
    {
        var cctor = c.Hooks.Methods.SingleOrDefault(m => m.IsConstructor && m.IsStatic)
            ?? throw new WeaveException($"{HookContract.FullTypeName} has no static constructor to extend; the step \"add hook slots\" must run first");
        string Literal(string name) => c.Hooks.Fields.FirstOrDefault(f => f.Name == name)?.Constant as string
            ?? throw new WeaveException($"{HookContract.FullTypeName} has no literal {name}; the step \"stamp identity\" must run before this one");
        string[] identity = [Literal(HookContract.SourceRuntimeVersion), Literal(HookContract.SourceFileLength), Literal(HookContract.SourceFileTime), Literal(HookContract.SourceMvid)];
        var scope = c.Hooks.Fields.FirstOrDefault(f => f.Name == HookContract.AddressScope)
            ?? throw new WeaveException($"{HookContract.FullTypeName} has no {HookContract.AddressScope}");
        var module = c.Module;
        var types = module.TypeSystem;
        var environment = c.CoreType("System", "Environment");
        var type = c.CoreType("System", "Type");
        var assembly = c.CoreType("System.Reflection", "Assembly");
        var methodInfo = c.CoreType("System.Reflection", "MethodInfo");
        var methodBase = c.CoreType("System.Reflection", "MethodBase");
        var typeHandle = c.CoreType("System", "RuntimeTypeHandle");
        typeHandle.IsValueType = true; // a signature names it valuetype, or the method does not bind
        var loadContext = c.CoreType("System.Runtime.Loader", "AssemblyLoadContext", contract: "System.Runtime.Loader");
        var delegates = new ArrayType(c.CoreType("System", "Delegate"));

        MethodReference Method(TypeReference declaring, string name, bool instance, TypeReference returns, params TypeReference[] parameters)
        {
            var method = new MethodReference(name, returns, declaring) { HasThis = instance };
            foreach (var p in parameters) method.Parameters.Add(new ParameterDefinition(p));
            return module.ImportReference(method);
        }

        var wire = new VariableDefinition(types.String);
        var wired = new VariableDefinition(delegates);
        cctor.Body.Variables.Add(wire);
        cctor.Body.Variables.Add(wired);
        cctor.Body.InitLocals = true;
        var end = cctor.Body.Instructions.LastOrDefault(i => i.OpCode == OpCodes.Ret)
            ?? throw new WeaveException($"the static constructor of {HookContract.FullTypeName} has no ret");
        var il = cctor.Body.GetILProcessor();
        var code = new List<Instruction>
        {
            il.Create(OpCodes.Ldstr, HookContract.WireVariable),
            il.Create(OpCodes.Call, Method(environment, "GetEnvironmentVariable", false, types.String, types.String)),
            il.Create(OpCodes.Stloc, wire),
            il.Create(OpCodes.Ldloc, wire),
            il.Create(OpCodes.Brfalse, end),
            il.Create(OpCodes.Call, Method(loadContext, "get_Default", false, loadContext)),
            il.Create(OpCodes.Ldloc, wire),
            il.Create(OpCodes.Callvirt, Method(loadContext, "LoadFromAssemblyPath", true, assembly, types.String)),
            il.Create(OpCodes.Ldstr, HookContract.WireTypeName),
            il.Create(OpCodes.Ldc_I4_1),
            il.Create(OpCodes.Callvirt, Method(assembly, "GetType", true, type, types.String, types.Boolean)),
            il.Create(OpCodes.Ldstr, HookContract.WireMethodName),
            il.Create(OpCodes.Callvirt, Method(type, "GetMethod", true, methodInfo, types.String)),
            il.Create(OpCodes.Ldnull),
            il.Create(OpCodes.Ldc_I4, 2 + identity.Length),
            il.Create(OpCodes.Newarr, types.Object),
            // [0] typeof(SockShimHooks), [1] AddressScope, [2..] the identity literals
            il.Create(OpCodes.Dup), il.Create(OpCodes.Ldc_I4_0), il.Create(OpCodes.Ldtoken, c.Hooks),
            il.Create(OpCodes.Call, Method(type, "GetTypeFromHandle", false, type, typeHandle)), il.Create(OpCodes.Stelem_Ref),
            il.Create(OpCodes.Dup), il.Create(OpCodes.Ldc_I4_1), il.Create(OpCodes.Ldsfld, scope), il.Create(OpCodes.Stelem_Ref),
        };
        for (int i = 0; i < identity.Length; i++)
            code.AddRange([il.Create(OpCodes.Dup), il.Create(OpCodes.Ldc_I4, 2 + i), il.Create(OpCodes.Ldstr, identity[i]), il.Create(OpCodes.Stelem_Ref)]);
        code.AddRange(
        [
            il.Create(OpCodes.Callvirt, Method(methodBase, "Invoke", true, types.Object, types.Object, new ArrayType(types.Object))),
            il.Create(OpCodes.Castclass, delegates),
            il.Create(OpCodes.Stloc, wired),
        ]);
        for (int i = 0; i < HookContract.SlotNames.Length; i++)
        {
            var slot = c.Slots[HookContract.SlotNames[i]];
            code.AddRange([il.Create(OpCodes.Ldloc, wired), il.Create(OpCodes.Ldc_I4, i), il.Create(OpCodes.Ldelem_Ref),
                il.Create(OpCodes.Castclass, slot.FieldType), il.Create(OpCodes.Stsfld, slot)]);
        }
        foreach (var instruction in code) il.InsertBefore(end, instruction);
    }
}
