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

    /// <summary>
    /// The federation and round of a slice key ("federation/round/slice", read from the end: a federation may hold '/'),
    /// or false when the key is not one.
    /// </summary>
    public static bool TryParseSlice(string sliceKey, out string federation, out long round)
    {
        ArgumentNullException.ThrowIfNull(sliceKey);
        federation = "";
        round = 0;
        int slash = sliceKey.LastIndexOf('/');
        int roundSlash = slash > 0 ? sliceKey.LastIndexOf('/', slash - 1) : -1;
        if (roundSlash <= 0 || SliceIndex(sliceKey) < 0
            || !long.TryParse(sliceKey.AsSpan(roundSlash + 1, slash - roundSlash - 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out round))
        {
            round = 0;
            return false;
        }

        federation = sliceKey[..roundSlash];
        return true;
    }
}
