using System.Runtime.InteropServices;

namespace SecureFed.Crypto.Internal;

/// <summary>
/// Owns an OpenSSL object freed with the function given: an <c>EVP_PKEY*</c> (an X25519 private key, which OpenSSL clears
/// when freed, or a public key) or an <c>EVP_PKEY_CTX*</c> derive context.
/// </summary>
internal sealed unsafe class EvpPrivateKeyHandle : SafeHandle
{
    private readonly delegate* unmanaged<IntPtr, void> _free;

    public EvpPrivateKeyHandle(IntPtr handle, delegate* unmanaged<IntPtr, void> free)
        : base(IntPtr.Zero, ownsHandle: true)
    {
        _free = free;
        SetHandle(handle);
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        _free(handle);
        return true;
    }
}
