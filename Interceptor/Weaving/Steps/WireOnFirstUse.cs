using Mono.Cecil;
using Mono.Cecil.Cil;
using SockShim.Interceptor.Contract;

namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>
/// Makes the woven copy wire its own slots on first use: the static constructor of
/// SockShimWiring (which the runtime runs at the first call of its Ensure, made by the first use
/// of a socket that needs SockShim: a tuple socket, one created in a [NewAddressPerSocket] flow,
/// a bind, a connect, a datagram; see WeaveContext.GuardedInvoke) is
/// <code>
/// string wire = Environment.GetEnvironmentVariable("SOCKSHIM_WIRE");
/// if (wire != null)
/// {
///     Type[] types = AssemblyLoadContext.Default.LoadFromAssemblyPath(wire).GetExportedTypes();
///     int i = 0;
///     while (i &lt; types.Length &amp;&amp; types[i].FullName != "SockShimWire") i++;
///     var d = (Delegate[])types[i].GetMethod("Wire")   // none: IndexOutOfRangeException, never unwired
///         .Invoke(null, new object[] { typeof(SockShimHooks), AddressScope, "10.0.12", "569344", "6389...", "mvid" });
///     Interlocked.CompareExchange(ref MapFamily, (Func&lt;...&gt;)d[0], null); ...   // each only if empty, HookContract.SlotNames' order
/// }
/// </code>
/// so an app started without the startup hook loads SockShim only when a socket first needs it
/// (creating and closing an ordinary socket does not), and the wiring needs no reflection over the woven type: its identity (the literals
/// StampIdentity wrote) comes as arguments, and the slots are stored here. Runs last. The type
/// is found among the exported ones by its name, not by Assembly.GetType: parsing a type name
/// cost a fresh process about 11 ms (the parser's first run and its JIT), the loop 0.5 ms.
/// </summary>
public sealed class WireOnFirstUse : IWeaveStep
{
    public string Name => "wire the slots on first use";

    public void Apply(WeaveContext c)
    {
        var cctor = (c.EnsureWired?.DeclaringType as TypeDefinition)?.Methods.SingleOrDefault(m => m.IsConstructor && m.IsStatic)
            ?? throw new WeaveException($"{HookContract.TypeNamespace}.{HookContract.WiringTypeName} has no static constructor to fill; the step \"add hook slots\" must run first");
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
        var exported = new VariableDefinition(new ArrayType(type));
        var index = new VariableDefinition(types.Int32);
        cctor.Body.Variables.Add(wire);
        cctor.Body.Variables.Add(wired);
        cctor.Body.Variables.Add(exported);
        cctor.Body.Variables.Add(index);
        cctor.Body.InitLocals = true;
        var end = cctor.Body.Instructions.LastOrDefault(i => i.OpCode == OpCodes.Ret)
            ?? throw new WeaveException($"the static constructor of {HookContract.WiringTypeName} has no ret");
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
            il.Create(OpCodes.Callvirt, Method(assembly, "GetExportedTypes", true, new ArrayType(type))),
            il.Create(OpCodes.Stloc, exported),
            il.Create(OpCodes.Ldc_I4_0),
            il.Create(OpCodes.Stloc, index),
        };
        // while (index < exported.Length && exported[index].FullName != "SockShimWire") index++;
        var test = il.Create(OpCodes.Ldloc, index);
        var found = il.Create(OpCodes.Ldloc, exported);
        code.AddRange(
        [
            il.Create(OpCodes.Br, test),
            il.Create(OpCodes.Ldloc, index), il.Create(OpCodes.Ldc_I4_1), il.Create(OpCodes.Add), il.Create(OpCodes.Stloc, index),
        ]);
        var next = code[^4];
        code.AddRange(
        [
            test, il.Create(OpCodes.Ldloc, exported), il.Create(OpCodes.Ldlen), il.Create(OpCodes.Conv_I4), il.Create(OpCodes.Bge, found),
            il.Create(OpCodes.Ldloc, exported), il.Create(OpCodes.Ldloc, index), il.Create(OpCodes.Ldelem_Ref),
            il.Create(OpCodes.Callvirt, Method(type, "get_FullName", true, types.String)),
            il.Create(OpCodes.Ldstr, HookContract.WireTypeName),
            il.Create(OpCodes.Call, Method(types.String, "op_Inequality", false, types.Boolean, types.String, types.String)),
            il.Create(OpCodes.Brtrue, next),
            // Found, or past the end: then the element load throws, and the app stops at the first use that wires.
            found, il.Create(OpCodes.Ldloc, index), il.Create(OpCodes.Ldelem_Ref),
            il.Create(OpCodes.Ldstr, HookContract.WireMethodName),
            il.Create(OpCodes.Callvirt, Method(type, "GetMethod", true, methodInfo, types.String)),
            il.Create(OpCodes.Ldnull),
            il.Create(OpCodes.Ldc_I4, 2 + identity.Length),
            il.Create(OpCodes.Newarr, types.Object),
            // [0] typeof(SockShimHooks), [1] AddressScope, [2..] the identity literals
            il.Create(OpCodes.Dup), il.Create(OpCodes.Ldc_I4_0), il.Create(OpCodes.Ldtoken, c.Hooks),
            il.Create(OpCodes.Call, Method(type, "GetTypeFromHandle", false, type, typeHandle)), il.Create(OpCodes.Stelem_Ref),
            il.Create(OpCodes.Dup), il.Create(OpCodes.Ldc_I4_1), il.Create(OpCodes.Ldsfld, scope), il.Create(OpCodes.Stelem_Ref),
        ]);
        for (int i = 0; i < identity.Length; i++)
            code.AddRange([il.Create(OpCodes.Dup), il.Create(OpCodes.Ldc_I4, 2 + i), il.Create(OpCodes.Ldstr, identity[i]), il.Create(OpCodes.Stelem_Ref)]);
        code.AddRange(
        [
            il.Create(OpCodes.Callvirt, Method(methodBase, "Invoke", true, types.Object, types.Object, new ArrayType(types.Object))),
            il.Create(OpCodes.Castclass, delegates),
            il.Create(OpCodes.Stloc, wired),
        ]);
        // Each slot only where it is still empty: another thread that read a slot stored here
        // before this loop ended may already have loaded the hooks, which fill every slot with the
        // real handlers; a trampoline stored over one would then call itself forever.
        var interlocked = c.CoreType("System.Threading", "Interlocked", contract: "System.Threading");
        var compareExchange = new MethodReference("CompareExchange", types.Void, interlocked);
        var t = new GenericParameter(compareExchange);
        compareExchange.GenericParameters.Add(t);
        compareExchange.ReturnType = t;
        compareExchange.Parameters.Add(new ParameterDefinition(new ByReferenceType(t)));
        compareExchange.Parameters.Add(new ParameterDefinition(t));
        compareExchange.Parameters.Add(new ParameterDefinition(t));
        for (int i = 0; i < HookContract.SlotNames.Length; i++)
        {
            var slot = c.Slots[HookContract.SlotNames[i]];
            var exchange = new GenericInstanceMethod(compareExchange);
            exchange.GenericArguments.Add(slot.FieldType);
            code.AddRange([il.Create(OpCodes.Ldsflda, slot), il.Create(OpCodes.Ldloc, wired), il.Create(OpCodes.Ldc_I4, i), il.Create(OpCodes.Ldelem_Ref),
                il.Create(OpCodes.Castclass, slot.FieldType), il.Create(OpCodes.Ldnull), il.Create(OpCodes.Call, module.ImportReference(exchange)), il.Create(OpCodes.Pop)]);
        }
        foreach (var instruction in code) il.InsertBefore(end, instruction);
    }
}
