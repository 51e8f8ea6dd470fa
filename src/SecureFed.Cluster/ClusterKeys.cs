using System.Globalization;

namespace SecureFed.Cluster;

/// <summary>Readable grain keys: "federation/round" for a round, "federation/round/slice" for a slice of it.</summary>
public static class ClusterKeys
{
    /// <summary>The round grain's key.</summary>
    public static string Round(string federation, long round) => string.Create(CultureInfo.InvariantCulture, $"{federation}/{round}");

    /// <summary>The key of slice <paramref name="slice"/> of a round.</summary>
    public static string Slice(string roundKey, int slice) => string.Create(CultureInfo.InvariantCulture, $"{roundKey}/{slice}");

    /// <summary>The slice index at the end of a slice key, or -1 when the key has none.</summary>
    public static int SliceIndex(string sliceKey)
    {
        ArgumentNullException.ThrowIfNull(sliceKey);
        int slash = sliceKey.LastIndexOf('/');
        return slash >= 0 && int.TryParse(sliceKey.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int slice) ? slice : -1;
    }
}
