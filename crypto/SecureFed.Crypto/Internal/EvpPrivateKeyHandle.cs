using System.Runtime.InteropServices;

namespace SecureFed.Crypto.Internal;

/// <summary>Owns an OpenSSL <c>EVP_PKEY*</c> holding an X25519 private key; freeing it lets OpenSSL clear the key.</summary>
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
