using Mono.Cecil;
using Mono.Cecil.Cil;

namespace SockShim.Interceptor.Weaving;

/// <summary>The two insertions the steps need, done so branch targets stay right.</summary>
internal static class IlEdit
{
    public static void InsertAtStart(MethodDefinition method, IReadOnlyList<Instruction> code)
    {
        var il = method.Body.GetILProcessor();
        var first = method.Body.Instructions[0];
        foreach (var i in code) il.InsertBefore(first, i);
    }

    public static void InsertAfter(MethodDefinition method, Instruction anchor, IReadOnlyList<Instruction> code)
    {
        var il = method.Body.GetILProcessor();
        var at = anchor;
        foreach (var i in code)
        {
            il.InsertAfter(at, i);
            at = i;
        }
    }

    /// <summary>Runs <paramref name="code"/> before every return. Each ret is turned into the
    /// first instruction of the code in place, so branches that targeted the ret now run it.</summary>
    public static void InsertBeforeEachReturn(MethodDefinition method, Func<List<Instruction>> code)
    {
        var il = method.Body.GetILProcessor();
        foreach (var ret in method.Body.Instructions.Where(i => i.OpCode == OpCodes.Ret).ToList())
        {
            var block = code();
            ret.OpCode = block[0].OpCode;
            ret.Operand = block[0].Operand;
            // Branches inside the block that targeted its first instruction now target the ret.
            foreach (var i in block) if (i.Operand == block[0]) i.Operand = ret;
            var at = ret;
            foreach (var i in block.Skip(1))
            {
                il.InsertAfter(at, i);
                at = i;
            }
            il.InsertAfter(at, Instruction.Create(OpCodes.Ret));
        }
    }
}
