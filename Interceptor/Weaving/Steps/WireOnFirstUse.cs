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
///     AssemblyLoadContext.Default.LoadFromAssemblyPath(wire)
///         .GetType("SockShimWire", true).GetMethod("Wire").Invoke(null, new object[] { typeof(SockShimHooks) });
/// </code>
/// so an app started without the startup hook loads SockShim only when it first touches a
/// socket. Runs after <see cref="AddHookSlots"/>, whose static constructor it extends.
/// </summary>
public sealed class WireOnFirstUse : IWeaveStep
{
    public string Name => "wire the slots on first use";

    public void Apply(WeaveContext c)
    {
        var cctor = c.Hooks.Methods.SingleOrDefault(m => m.IsConstructor && m.IsStatic)
            ?? throw new WeaveException($"{HookContract.FullTypeName} has no static constructor to extend; the step \"add hook slots\" must run first");
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

        MethodReference Method(TypeReference declaring, string name, bool instance, TypeReference returns, params TypeReference[] parameters)
        {
            var method = new MethodReference(name, returns, declaring) { HasThis = instance };
            foreach (var p in parameters) method.Parameters.Add(new ParameterDefinition(p));
            return module.ImportReference(method);
        }

        var wire = new VariableDefinition(types.String);
        cctor.Body.Variables.Add(wire);
        cctor.Body.InitLocals = true;
        var end = cctor.Body.Instructions.LastOrDefault(i => i.OpCode == OpCodes.Ret)
            ?? throw new WeaveException($"the static constructor of {HookContract.FullTypeName} has no ret");
        var il = cctor.Body.GetILProcessor();
        foreach (var instruction in new[]
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
            il.Create(OpCodes.Ldc_I4_1),
            il.Create(OpCodes.Newarr, types.Object),
            il.Create(OpCodes.Dup),
            il.Create(OpCodes.Ldc_I4_0),
            il.Create(OpCodes.Ldtoken, c.Hooks),
            il.Create(OpCodes.Call, Method(type, "GetTypeFromHandle", false, type, typeHandle)),
            il.Create(OpCodes.Stelem_Ref),
            il.Create(OpCodes.Callvirt, Method(methodBase, "Invoke", true, types.Object, types.Object, new ArrayType(types.Object))),
            il.Create(OpCodes.Pop),
        })
            il.InsertBefore(end, instruction);
    }
}
