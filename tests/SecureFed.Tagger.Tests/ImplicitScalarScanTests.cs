using System.Reflection;
using System.Reflection.Emit;
using TorchSharp;

namespace SecureFed.Tagger.Tests;

/// <summary>
/// Reads the IL of every method of the assemblies that drive libtorch and fails on any call that makes a TorchSharp
/// <see cref="Scalar"/> nobody keeps alive: an implicit conversion (<c>t.clamp_min(1.0)</c>), or a TorchSharp method that
/// makes one inside (<c>t.square()</c> is <c>pow(2)</c>, <c>t * 2.0</c>, the optimizers' steps). Such a Scalar is
/// unreachable once its handle is read, so a collection on another thread can free it while libtorch uses it (see
/// <see cref="ConcurrentTrainingStressTests"/>). Explicit scalars held in a local with <c>using</c> or in a static field
/// (<c>TorchScalars</c>) are fine.
/// </summary>
public sealed class ImplicitScalarScanTests
{
    private const int MaxDepth = 4;

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    private static readonly Assembly TorchSharpAssembly = typeof(Scalar).Assembly;

    public static TheoryData<string> Assemblies => new()
    {
        typeof(TaggerTrainer).Assembly.GetName().Name!,
    };

    [Theory]
    [MemberData(nameof(Assemblies))]
    public void Assembly_DrivingLibtorch_CreatesNoTemporaryScalar(string assemblyName)
    {
        Assembly assembly = Assembly.Load(assemblyName);
        var unsafeCache = new Dictionary<MethodBase, string?>();
        var findings = new List<string>();
        foreach (MethodBase method in AllMethods(assembly))
        {
            var callees = Callees(method).ToList();
            bool disposes = callees.Any(IsDispose) || method is ConstructorInfo;
            foreach (MethodBase callee in callees)
            {
                if (IsConversion(callee) || (IsToScalar(callee) && !disposes))
                {
                    // Our own code may make a Scalar explicitly (ToScalar) when it disposes it (a using local) or keeps it
                    // in a field (a constructor); an implicit conversion is never kept alive.
                    findings.Add($"{Name(method)} converts a number to a Scalar implicitly ({Name(callee)})");
                }
                else if (callee.Module.Assembly == TorchSharpAssembly)
                {
                    // A virtual TorchSharp method called directly (an optimizer's step) runs one of its overrides.
                    foreach (MethodBase target in Overrides(callee).Prepend(callee))
                    {
                        if (UnsafePath(target, unsafeCache, MaxDepth) is string path)
                        {
                            findings.Add($"{Name(method)} calls {path}");
                        }
                    }
                }
            }
        }

        Assert.True(findings.Count == 0, "temporary TorchSharp Scalars:\n" + string.Join("\n", findings.Distinct()));
    }

    [Fact]
    public void Scanner_KnownOffenders_AreFound()
    {
        // The scanner must see what it is meant to see, or the test above proves nothing.
        var cache = new Dictionary<MethodBase, string?>();
        MethodInfo square = typeof(torch.Tensor).GetMethod(nameof(torch.Tensor.square), Type.EmptyTypes)!;
        MethodInfo mulDouble = typeof(torch.Tensor).GetMethod("op_Multiply", [typeof(torch.Tensor), typeof(double)])!;
        MethodInfo adamStep = typeof(TorchSharp.Modules.Adam).GetMethod("step")!;
        Assert.NotNull(UnsafePath(square, cache, MaxDepth));
        Assert.NotNull(UnsafePath(mulDouble, cache, MaxDepth));
        Assert.NotNull(UnsafePath(adamStep, cache, MaxDepth));
        Assert.Contains(Callees(typeof(ImplicitScalarScanTests).GetMethod(nameof(Offender), BindingFlags.NonPublic | BindingFlags.Static)!), IsImplicitScalar);

        MethodInfo pow = typeof(torch.Tensor).GetMethod(nameof(torch.Tensor.pow), [typeof(Scalar)])!;
        Assert.Null(UnsafePath(pow, cache, MaxDepth));
    }

    private static torch.Tensor Offender(torch.Tensor t) => t.clamp_min(1.0);

    /// <summary>Null when <paramref name="method"/> (and what it calls in TorchSharp, to a depth) makes no temporary Scalar; else the call path.</summary>
    private static string? UnsafePath(MethodBase method, Dictionary<MethodBase, string?> cache, int depth)
    {
        if (cache.TryGetValue(method, out string? known))
        {
            return known;
        }

        cache[method] = null; // cycles
        string? result = null;
        var callees = Callees(method).ToList();
        if (callees.Any(IsImplicitScalar) && !callees.Any(IsDispose))
        {
            result = Name(method);
        }
        else if (depth > 0)
        {
            foreach (MethodBase callee in callees.Where(c => c.Module.Assembly == TorchSharpAssembly && !IsDispose(c)))
            {
                if (UnsafePath(callee, cache, depth - 1) is string inner)
                {
                    result = $"{Name(method)} -> {inner}";
                    break;
                }
            }
        }

        cache[method] = result;
        return result;
    }

    /// <summary>The overrides in TorchSharp of a virtual TorchSharp method.</summary>
    private static IEnumerable<MethodBase> Overrides(MethodBase callee)
    {
        if (callee is not MethodInfo { IsVirtual: true, IsFinal: false } virtualMethod)
        {
            return [];
        }

        MethodInfo root = virtualMethod.GetBaseDefinition();
        return TorchSharpTypes.Value
            .Where(t => !t.IsInterface && t != callee.DeclaringType && root.DeclaringType!.IsAssignableFrom(t))
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Where(m => m.Name == root.Name && m.GetBaseDefinition() == root);
    }

    private static readonly Lazy<Type[]> TorchSharpTypes = new(() =>
    {
        try
        {
            return TorchSharpAssembly.GetTypes();
        }
        catch (ReflectionTypeLoadException e)
        {
            return [.. e.Types.OfType<Type>()];
        }
    });

    private static bool IsImplicitScalar(MethodBase m) => IsConversion(m) || IsToScalar(m);

    private static bool IsConversion(MethodBase m) => m.DeclaringType == typeof(Scalar) && m.Name == "op_Implicit";

    private static bool IsToScalar(MethodBase m) => m.DeclaringType?.Name == "ScalarExtensionMethods" && m.Name == "ToScalar";

    /// <summary>Scalar.Dispose, or IDisposable.Dispose (what a <c>using</c> local compiles to).</summary>
    private static bool IsDispose(MethodBase m) =>
        m.Name == nameof(IDisposable.Dispose) && (m.DeclaringType == typeof(Scalar) || m.DeclaringType == typeof(IDisposable));

    private static string Name(MethodBase m) => $"{m.DeclaringType?.Name}.{m.Name}";

    private static IEnumerable<MethodBase> AllMethods(Assembly assembly)
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (Type type in assembly.GetTypes())
        {
            foreach (MethodBase m in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                yield return m;
            }
        }
    }

    /// <summary>Methods named by call, callvirt, newobj, ldftn and ldvirtftn in <paramref name="method"/>'s IL.</summary>
    private static IEnumerable<MethodBase> Callees(MethodBase method)
    {
        byte[]? il;
        try
        {
            il = method.GetMethodBody()?.GetILAsByteArray();
        }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException)
        {
            il = null;
        }

        if (il is null)
        {
            yield break;
        }

        Type[]? typeArgs = method.DeclaringType is { IsGenericType: true } t ? t.GetGenericArguments() : null;
        Type[]? methodArgs = method is MethodInfo { IsGenericMethod: true } mi ? mi.GetGenericArguments() : null;
        int i = 0;
        while (i < il.Length)
        {
            short value = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            i += il[i] == 0xFE ? 2 : 1;
            OpCode op = OpCodesByValue[value];
            int operandSize = OperandSize(op, il, i);
            if (op == OpCodes.Call || op == OpCodes.Callvirt || op == OpCodes.Newobj || op == OpCodes.Ldftn || op == OpCodes.Ldvirtftn)
            {
                int token = BitConverter.ToInt32(il, i);
                MethodBase? callee = null;
                try
                {
                    callee = method.Module.ResolveMethod(token, typeArgs, methodArgs);
                }
                catch (Exception e) when (e is ArgumentException or BadImageFormatException or TypeLoadException or MissingMethodException)
                {
                }

                if (callee is not null)
                {
                    yield return callee;
                }
            }

            i += operandSize;
        }
    }

    private static int OperandSize(OpCode op, byte[] il, int at) => op.OperandType switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, at)),
        _ => 4,
    };
}
