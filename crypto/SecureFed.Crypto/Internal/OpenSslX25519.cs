using System.Runtime.InteropServices;

namespace SecureFed.Crypto.Internal;

/// <summary>
/// X25519 through the operating system's OpenSSL libcrypto (the library .NET's own AES-GCM, SHA-2 and TLS already use
/// on Linux), called with the EVP_PKEY raw-key API of OpenSSL 1.1.1 and 3.x. OpenSSL's assembly field arithmetic
/// (MULX/ADX on x86-64) makes an agreement about 2.5 to 3 times faster than BouncyCastle's managed code, and secure
/// aggregation runs one agreement per peer on every client and one per (dropped, surviving) pair on the aggregator.
/// </summary>
/// <remarks>
/// Loaded once, by soname, with <see cref="NativeLibrary.TryLoad(string, out IntPtr)"/>; if the library or any of the
/// eight functions is missing, or the RFC 7748 self-test below does not reproduce its vector, <see cref="IsAvailable"/>
/// is false and <see cref="X25519KeyPair"/> uses BouncyCastle; both give identical results (tested). Setting
/// <c>SECUREFED_X25519=managed</c> forces BouncyCastle. Never used on Windows or macOS (no libcrypto by that name).
/// </remarks>
internal static unsafe class OpenSslX25519
{
    private const int EvpPkeyX25519 = 1034; // NID_X25519

    private static readonly Api? s_api = Load();

    /// <summary>Whether libcrypto was found, exports the API and passed the self-test.</summary>
    public static bool IsAvailable => s_api is not null;

    /// <summary>The libcrypto soname in use, or null.</summary>
    public static string? LibraryName { get; private set; }

    /// <summary>Imports a 32-byte private key into an OpenSSL key object (OpenSSL clears it when freed).</summary>
    /// <exception cref="InvalidOperationException">OpenSSL is not available.</exception>
    /// <exception cref="System.Security.Cryptography.CryptographicException">OpenSSL refused the key.</exception>
    public static EvpPrivateKeyHandle ImportPrivateKey(ReadOnlySpan<byte> privateKey) =>
        ImportPrivateKey(s_api ?? throw NotAvailable(), privateKey);

    /// <summary>
    /// Computes X25519(private, peer) into <paramref name="sharedSecret"/>; false when OpenSSL refuses (it refuses
    /// an all-zero result, i.e. a low-order peer point). Safe to call from several threads with the same key object.
    /// </summary>
    public static bool TryDerive(EvpPrivateKeyHandle privateKey, ReadOnlySpan<byte> peerPublicKey, Span<byte> sharedSecret) =>
        TryDerive(s_api ?? throw NotAvailable(), privateKey, peerPublicKey, sharedSecret);

    /// <summary>Imports a 32-byte public key into an OpenSSL key object (read-only; usable from several threads).</summary>
    /// <exception cref="InvalidOperationException">OpenSSL is not available.</exception>
    /// <exception cref="System.Security.Cryptography.CryptographicException">OpenSSL refused the key.</exception>
    public static EvpPrivateKeyHandle ImportPublicKey(ReadOnlySpan<byte> publicKey)
    {
        Api api = s_api ?? throw NotAvailable();
        IntPtr pkey;
        fixed (byte* p = publicKey)
        {
            pkey = api.NewRawPublicKey(EvpPkeyX25519, IntPtr.Zero, p, (nuint)publicKey.Length);
        }

        if (pkey == IntPtr.Zero)
        {
            throw new System.Security.Cryptography.CryptographicException("OpenSSL refused the X25519 public key.");
        }

        return new EvpPrivateKeyHandle(pkey, api.FreeKey);
    }

    /// <summary>
    /// A derive context for <paramref name="privateKey"/>, initialised once (EVP_PKEY_CTX_new + derive_init) and then
    /// reused for many peers with <see cref="TryDerive(EvpPrivateKeyHandle, EvpPrivateKeyHandle, Span{byte})"/>.
    /// Not thread-safe: one context per thread. It holds a reference to the key object, so it stays valid until freed.
    /// </summary>
    /// <exception cref="System.Security.Cryptography.CryptographicException">OpenSSL refused to create it.</exception>
    public static EvpPrivateKeyHandle CreateDeriveContext(EvpPrivateKeyHandle privateKey)
    {
        Api api = s_api ?? throw NotAvailable();
        bool addedRef = false;
        try
        {
            privateKey.DangerousAddRef(ref addedRef);
            IntPtr ctx = api.NewContext(privateKey.DangerousGetHandle(), IntPtr.Zero);
            if (ctx == IntPtr.Zero)
            {
                throw new System.Security.Cryptography.CryptographicException("OpenSSL could not create an X25519 derive context.");
            }

            var handle = new EvpPrivateKeyHandle(ctx, api.FreeContext);
            if (api.DeriveInit(ctx) != 1)
            {
                handle.Dispose();
                throw new System.Security.Cryptography.CryptographicException("OpenSSL could not initialise an X25519 derive context.");
            }

            return handle;
        }
        finally
        {
            if (addedRef)
            {
                privateKey.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// X25519 with a context from <see cref="CreateDeriveContext"/> and a peer from <see cref="ImportPublicKey"/>; false
    /// when OpenSSL refuses (all-zero result). The peer is not re-validated by OpenSSL (EVP_PKEY_derive_set_peer_ex with
    /// validate_peer = 0, where it exists): callers validate the encoding first (<see cref="X25519.ValidatePublicKey"/>)
    /// and check the result for all-zero; OpenSSL's X25519 validation only checks that the key has a public part.
    /// </summary>
    public static bool TryDerive(EvpPrivateKeyHandle context, EvpPrivateKeyHandle peer, Span<byte> sharedSecret)
    {
        Api api = s_api ?? throw NotAvailable();
        bool ctxRef = false;
        bool peerRef = false;
        try
        {
            context.DangerousAddRef(ref ctxRef);
            peer.DangerousAddRef(ref peerRef);
            IntPtr ctx = context.DangerousGetHandle();
            IntPtr peerKey = peer.DangerousGetHandle();
            int set = api.DeriveSetPeerEx is not null ? api.DeriveSetPeerEx(ctx, peerKey, 0) : api.DeriveSetPeer(ctx, peerKey);
            if (set != 1)
            {
                return false;
            }

            fixed (byte* output = sharedSecret)
            {
                nuint length = (nuint)sharedSecret.Length;
                return api.Derive(ctx, output, &length) == 1 && length == (nuint)sharedSecret.Length;
            }
        }
        finally
        {
            if (peerRef)
            {
                peer.DangerousRelease();
            }

            if (ctxRef)
            {
                context.DangerousRelease();
            }
        }
    }

    private static InvalidOperationException NotAvailable() => new("OpenSSL X25519 is not available on this machine.");

    private static EvpPrivateKeyHandle ImportPrivateKey(Api api, ReadOnlySpan<byte> privateKey)
    {
        IntPtr pkey;
        fixed (byte* p = privateKey)
        {
            pkey = api.NewRawPrivateKey(EvpPkeyX25519, IntPtr.Zero, p, (nuint)privateKey.Length);
        }

        if (pkey == IntPtr.Zero)
        {
            throw new System.Security.Cryptography.CryptographicException("OpenSSL refused the X25519 private key.");
        }

        return new EvpPrivateKeyHandle(pkey, api.FreeKey);
    }

    private static bool TryDerive(Api api, EvpPrivateKeyHandle privateKey, ReadOnlySpan<byte> peerPublicKey, Span<byte> sharedSecret)
    {
        bool addedRef = false;
        IntPtr peer = IntPtr.Zero;
        IntPtr ctx = IntPtr.Zero;
        try
        {
            privateKey.DangerousAddRef(ref addedRef);
            fixed (byte* pub = peerPublicKey)
            fixed (byte* output = sharedSecret)
            {
                peer = api.NewRawPublicKey(EvpPkeyX25519, IntPtr.Zero, pub, (nuint)peerPublicKey.Length);
                if (peer == IntPtr.Zero)
                {
                    return false;
                }

                // One context per call: EVP_PKEY_CTX is not thread-safe, the EVP_PKEY it references is (read-only).
                ctx = api.NewContext(privateKey.DangerousGetHandle(), IntPtr.Zero);
                if (ctx == IntPtr.Zero || api.DeriveInit(ctx) != 1 || api.DeriveSetPeer(ctx, peer) != 1)
                {
                    return false;
                }

                nuint length = (nuint)sharedSecret.Length;
                return api.Derive(ctx, output, &length) == 1 && length == (nuint)sharedSecret.Length;
            }
        }
        finally
        {
            if (ctx != IntPtr.Zero)
            {
                api.FreeContext(ctx);
            }

            if (peer != IntPtr.Zero)
            {
                api.FreeKey(peer);
            }

            if (addedRef)
            {
                privateKey.DangerousRelease();
            }
        }
    }

    private static Api? Load()
    {
        if (string.Equals(Environment.GetEnvironmentVariable("SECUREFED_X25519"), "managed", StringComparison.OrdinalIgnoreCase)
            || !(OperatingSystem.IsLinux() || OperatingSystem.IsFreeBSD()))
        {
            return null;
        }

        foreach (string name in (string[])["libcrypto.so.3", "libcrypto.so.1.1"])
        {
            if (!NativeLibrary.TryLoad(name, out IntPtr lib))
            {
                continue;
            }

            if (Bind(lib) is Api api && SelfTest(api))
            {
                LibraryName = name;
                return api;
            }
        }

        return null;
    }

    private static Api? Bind(IntPtr lib)
    {
        if (NativeLibrary.TryGetExport(lib, "EVP_PKEY_new_raw_private_key", out IntPtr newPrivate)
            && NativeLibrary.TryGetExport(lib, "EVP_PKEY_new_raw_public_key", out IntPtr newPublic)
            && NativeLibrary.TryGetExport(lib, "EVP_PKEY_free", out IntPtr freeKey)
            && NativeLibrary.TryGetExport(lib, "EVP_PKEY_CTX_new", out IntPtr newContext)
            && NativeLibrary.TryGetExport(lib, "EVP_PKEY_CTX_free", out IntPtr freeContext)
            && NativeLibrary.TryGetExport(lib, "EVP_PKEY_derive_init", out IntPtr deriveInit)
            && NativeLibrary.TryGetExport(lib, "EVP_PKEY_derive_set_peer", out IntPtr deriveSetPeer)
            && NativeLibrary.TryGetExport(lib, "EVP_PKEY_derive", out IntPtr derive))
        {
            // OpenSSL 3.0+ only; 1.1.1 has EVP_PKEY_derive_set_peer alone.
            NativeLibrary.TryGetExport(lib, "EVP_PKEY_derive_set_peer_ex", out IntPtr deriveSetPeerEx);
            return new Api(
                (delegate* unmanaged<int, IntPtr, byte*, nuint, IntPtr>)newPrivate,
                (delegate* unmanaged<int, IntPtr, byte*, nuint, IntPtr>)newPublic,
                (delegate* unmanaged<IntPtr, void>)freeKey,
                (delegate* unmanaged<IntPtr, IntPtr, IntPtr>)newContext,
                (delegate* unmanaged<IntPtr, void>)freeContext,
                (delegate* unmanaged<IntPtr, int>)deriveInit,
                (delegate* unmanaged<IntPtr, IntPtr, int>)deriveSetPeer,
                (delegate* unmanaged<IntPtr, byte*, nuint*, int>)derive,
                (delegate* unmanaged<IntPtr, IntPtr, int, int>)deriveSetPeerEx);
        }

        return null;
    }

    /// <summary>RFC 7748 section 5.2, first vector; a library that does not reproduce it is not used.</summary>
    private static bool SelfTest(Api api)
    {
        byte[] scalar = Convert.FromHexString("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
        byte[] u = Convert.FromHexString("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
        byte[] expected = Convert.FromHexString("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
        try
        {
            using EvpPrivateKeyHandle key = ImportPrivateKey(api, scalar);
            Span<byte> result = stackalloc byte[32];
            return TryDerive(api, key, u, result) && result.SequenceEqual(expected);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return false;
        }
    }

    /// <summary>The libcrypto entry points used, resolved once.</summary>
    private sealed class Api(
        delegate* unmanaged<int, IntPtr, byte*, nuint, IntPtr> newRawPrivateKey,
        delegate* unmanaged<int, IntPtr, byte*, nuint, IntPtr> newRawPublicKey,
        delegate* unmanaged<IntPtr, void> freeKey,
        delegate* unmanaged<IntPtr, IntPtr, IntPtr> newContext,
        delegate* unmanaged<IntPtr, void> freeContext,
        delegate* unmanaged<IntPtr, int> deriveInit,
        delegate* unmanaged<IntPtr, IntPtr, int> deriveSetPeer,
        delegate* unmanaged<IntPtr, byte*, nuint*, int> derive,
        delegate* unmanaged<IntPtr, IntPtr, int, int> deriveSetPeerEx)
    {
        public delegate* unmanaged<int, IntPtr, byte*, nuint, IntPtr> NewRawPrivateKey { get; } = newRawPrivateKey;

        public delegate* unmanaged<int, IntPtr, byte*, nuint, IntPtr> NewRawPublicKey { get; } = newRawPublicKey;

        public delegate* unmanaged<IntPtr, void> FreeKey { get; } = freeKey;

        public delegate* unmanaged<IntPtr, IntPtr, IntPtr> NewContext { get; } = newContext;

        public delegate* unmanaged<IntPtr, void> FreeContext { get; } = freeContext;

        public delegate* unmanaged<IntPtr, int> DeriveInit { get; } = deriveInit;

        public delegate* unmanaged<IntPtr, IntPtr, int> DeriveSetPeer { get; } = deriveSetPeer;

        public delegate* unmanaged<IntPtr, byte*, nuint*, int> Derive { get; } = derive;

        /// <summary>EVP_PKEY_derive_set_peer_ex (OpenSSL 3.0+), or null.</summary>
        public delegate* unmanaged<IntPtr, IntPtr, int, int> DeriveSetPeerEx { get; } = deriveSetPeerEx;
    }
}
