using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SecureFed.Crypto.Internal;

/// <summary>destination = keystream AND mask.</summary>
internal readonly struct OverwriteWordOp : IKeystreamWordOp
{
    public static bool ReadsDestination => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<uint> Combine(Vector128<uint> destination, Vector128<uint> keystream, Vector128<uint> mask) => keystream & mask;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Combine(uint destination, uint keystream, uint mask) => keystream & mask;
}
