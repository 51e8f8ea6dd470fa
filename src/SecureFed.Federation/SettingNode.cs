namespace SecureFed.Federation;

/// <summary>
/// A configuration key as <see cref="SettingNames.Shape"/> sees it: its key, its value (null for a section) and its
/// children (an object's keys or a list's indices).
/// </summary>
/// <param name="Key">The key (the last part of its path).</param>
/// <param name="Value">The value; null when the key is a section.</param>
/// <param name="Children">The child keys.</param>
public sealed record SettingNode(string Key, string? Value, IReadOnlyList<SettingNode> Children);
