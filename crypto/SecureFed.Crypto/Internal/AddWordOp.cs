using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SecureFed.Crypto.Internal;

/// <summary>destination = (destination + keystream) mod 2^b.</summary>
internal readonly struct AddWordOp : IKeystreamWordOp
{
    public static bool ReadsDestination => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<uint> Combine(Vector128<uint> destination, Vector128<uint> keystream, Vector128<uint> mask) => (destination + keystream) & mask;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Combine(uint destination, uint keystream, uint mask) => (destination + keystream) & mask;
}
