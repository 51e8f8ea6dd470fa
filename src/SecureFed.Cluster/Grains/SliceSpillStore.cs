using System.Globalization;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// Where this silo's slice grains spill the chunks they have added into their sums but not yet committed
/// (<see cref="SliceSpill"/>): a directory of its own under the machine's temporary directory (<c>TMPDIR</c>),
/// <c>securefed-slice-spill/&lt;address&gt;-&lt;silo port&gt;</c>, so that silos sharing a machine never touch each
/// other's files and a restarted silo finds the files its killed predecessor left. <see cref="DeleteStale"/> deletes
/// those at start-up (<see cref="SliceSpillCleanup"/>).
/// </summary>
internal class SliceSpillStore
{
    private long _next;

    public SliceSpillStore(ILocalSiloDetails silo)
        : this(Path.Combine(Path.GetTempPath(), "securefed-slice-spill",
            string.Create(CultureInfo.InvariantCulture, $"{Sanitize(silo.SiloAddress.Endpoint.Address.ToString())}-{silo.SiloAddress.Endpoint.Port}")))
    {
    }

    public SliceSpillStore(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = directory;
    }

    /// <summary>The silo's spill directory.</summary>
    public string Directory { get; }

    /// <summary>Deletes every spill file in the directory (left by a silo that was killed); returns how many.</summary>
    public int DeleteStale()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return 0;
        }

        int deleted = 0;
        foreach (string file in System.IO.Directory.EnumerateFiles(Directory, "*.spill"))
        {
            File.Delete(file);
            deleted++;
        }

        return deleted;
    }

    /// <summary>Creates a new spill file for <paramref name="sender"/>'s chunk of slice <paramref name="slice"/> (a grain key).</summary>
    /// <exception cref="IOException">The file could not be created.</exception>
    /// <exception cref="UnauthorizedAccessException">The directory may not be written.</exception>
    public SliceSpill Create(string slice, int sender)
    {
        ArgumentException.ThrowIfNullOrEmpty(slice);
        System.IO.Directory.CreateDirectory(Directory);
        string path = Path.Combine(Directory, string.Create(CultureInfo.InvariantCulture,
            $"{Sanitize(slice)}.{sender}.{Interlocked.Increment(ref _next)}.spill"));
        return new SliceSpill(Open(path), path);
    }

    /// <summary>Opens the file (tests replace this to make writes fail).</summary>
    protected virtual Stream Open(string path)
        => new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 0,
            FileOptions.DeleteOnClose | FileOptions.Asynchronous);

    private static string Sanitize(string name)
        => string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
}
