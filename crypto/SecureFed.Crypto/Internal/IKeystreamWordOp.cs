using System.Runtime.Intrinsics;

namespace SecureFed.Crypto.Internal;

/// <summary>How a keystream word is combined with a destination word (specialised per implementation by the JIT).</summary>
internal interface IKeystreamWordOp
{
    /// <summary>Whether <see cref="Combine(Vector128{uint}, Vector128{uint}, Vector128{uint})"/> reads the destination.</summary>
    static abstract bool ReadsDestination { get; }

    /// <summary>Four words at once: the new destination words from the old ones and the keystream, reduced by the mask.</summary>
    static abstract Vector128<uint> Combine(Vector128<uint> destination, Vector128<uint> keystream, Vector128<uint> mask);

    /// <summary>One word: the new destination word from the old one and the keystream word, reduced by the mask.</summary>
    static abstract uint Combine(uint destination, uint keystream, uint mask);
}
