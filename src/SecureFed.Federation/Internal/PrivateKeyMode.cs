using System.Globalization;

namespace SecureFed.Federation.Internal;

/// <summary>
/// Refuses a private key file that other users can read or change, as ssh does with an identity file: a kit copied with
/// the wrong umask (<c>cp -r</c>, an unpacked archive: mode 0644) left a site's or the aggregator's TLS and identity keys,
/// or the CA key, readable by every local user, and they were used without a word. Provisioning writes them 0600. As
/// PostgreSQL allows for its server key, a key owned by root may also be read by its group (0640): a service that runs in
/// that group reads a key an administrator keeps. Unix only (Windows has no such mode bits).
/// </summary>
internal static class PrivateKeyMode
{
    private const UnixFileMode GroupOrOthers =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Throws when <paramref name="path"/> (a link is followed) gives its group or other users any access.</summary>
    /// <param name="path">The key file, already read as a regular file.</param>
    /// <param name="what">What the file is, for the message (e.g. <c>Identity key</c>).</param>
    /// <exception cref="InvalidDataException">The file's mode gives others access; the message names the file, its mode and the chmod that fixes it.</exception>
    public static void EnsureOwnerOnly(string path, string what) => _ = EnsureOwnerOnly(path, what, acceptReadable: false, optOut: null);

    /// <summary>
    /// As <see cref="EnsureOwnerOnly(string, string)"/>; with <paramref name="acceptReadable"/> (the <c>AcceptReadableKeys</c>
    /// opt-out, for a platform that sets the mode: a Kubernetes Secret volume's default 0644, a Docker secret's 0444) a key its
    /// group or other users may only read is accepted and returned, for the caller to warn about each time it loads it, when
    /// root or this process's user owns it. A key they may write or execute, or that another user owns (who could rewrite
    /// it), is refused all the same.
    /// </summary>
    /// <param name="path">The key file, already read as a regular file.</param>
    /// <param name="what">What the file is, for the message (e.g. <c>Identity key</c>).</param>
    /// <param name="acceptReadable">Whether the opt-out is on.</param>
    /// <param name="optOut">
    /// How the caller's opt-out is turned on, for the refusal's hint (<c>setting SecureFed:AcceptReadableKeys to true</c>,
    /// <c>--accept-readable-keys</c>), or null when the caller has none (the CA key): the hint is given only then and only for a
    /// key the opt-out would accept (others may only read it, root or this process's user owns it).
    /// </param>
    /// <returns>The readable key accepted by the opt-out, or null when only its owner may access it.</returns>
    public static ReadableKeyFile? EnsureOwnerOnly(string path, string what, bool acceptReadable, string? optOut)
    {
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        UnixFileMode mode = File.GetUnixFileMode(path);
        UnixFileMode exposed = mode & GroupOrOthers;
        if (exposed == UnixFileMode.None || (exposed == UnixFileMode.GroupRead && OwnedByRoot(path)))
        {
            return null;
        }

        string octal = Convert.ToString((int)mode & 0xFFF, 8).PadLeft(4, '0');
        string name = OptOutName(optOut);
        bool readOnly = (exposed & ~(UnixFileMode.GroupRead | UnixFileMode.OtherRead)) == UnixFileMode.None;
        if (acceptReadable && readOnly)
        {
            uint? owner = OwnerOf(path);
            if (owner is 0 || (owner is { } uid && uid == FileOwner.EffectiveUserId()))
            {
                return new ReadableKeyFile(what, path, octal, FileOwner.Describe(owner.Value)) { OptOut = name };
            }

            string whose = owner is { } other ? $"belongs to {FileOwner.Describe(other)}, neither root nor the user this process runs as ({FileOwner.Describe(FileOwner.EffectiveUserId())})" : "has an owner that cannot be read here";
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"{what} '{path}' has mode {octal} and {whose}: {name} accepts a private key others may read only when root or this user owns it (its owner could rewrite it), so it is not used."));
        }

        string who = (exposed & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute)) != 0 ? "every user of this machine" : "the users of its group";
        string access = (exposed & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0 ? "read" : "access";
        string hint = !readOnly
            ? (acceptReadable ? $" {name} does not cover this: it accepts a key others may only read, never one they may write or execute." : string.Empty)
            : optOut is not null && OwnerOf(path) is { } keyOwner && (keyOwner == 0 || keyOwner == FileOwner.EffectiveUserId())
                ? $" If the platform sets the mode and it cannot be changed (a Docker secret's 0444, a Kubernetes Secret whose defaultMode cannot be set), {optOut} accepts a key others may only read, with a warning naming it each time it is loaded (README 'Private key modes')."
                : string.Empty;
        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
            $"{what} '{path}' has mode {octal}: {who} may {access} this private key, so it is not used. " +
            $"Make it readable by its owner only, then run this again: chmod 600 '{path}'. If another user may have read it meanwhile, treat the key as exposed. " +
            $"(On a file system without Unix modes, such as FAT, exFAT or a Windows share, chmod changes nothing: copy the kit to a native one. A Kubernetes Secret volume needs defaultMode 0400.){hint}"));
    }

    /// <summary>
    /// The opt-out's name as its user sets it, from how the caller turns it on: <c>--accept-readable-keys</c> as given,
    /// <c>setting SecureFed:AcceptReadableKeys to true</c> as <c>SecureFed:AcceptReadableKeys</c>; <c>AcceptReadableKeys</c>
    /// when the caller named none.
    /// </summary>
    private static string OptOutName(string? optOut)
    {
        const string Setting = "setting ";
        const string ToTrue = " to true";
        return optOut switch
        {
            null or "" => "AcceptReadableKeys",
            _ when optOut.StartsWith(Setting, StringComparison.Ordinal) && optOut.EndsWith(ToTrue, StringComparison.Ordinal) && optOut.Length > Setting.Length + ToTrue.Length
                => optOut[Setting.Length..^ToTrue.Length],
            _ => optOut,
        };
    }

    private static uint? OwnerOf(string path)
    {
        if (!FileOwner.IsSupported)
        {
            return null;
        }

        try
        {
            return FileOwner.UserIdOf(path);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static bool OwnedByRoot(string path)
    {
        if (!FileOwner.IsSupported)
        {
            return false;
        }

        try
        {
            return FileOwner.UserIdOf(path) == 0;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
