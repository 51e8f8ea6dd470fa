namespace SecureFed.Aggregator;

/// <summary>One round-affecting setting whose value differs between two <see cref="RoundSettings"/>.</summary>
/// <param name="Name">The setting's name under <c>SecureFed:</c> (e.g. <c>ServerLearningRate</c>).</param>
/// <param name="Previous">Its canonical value in the saved settings.</param>
/// <param name="Current">Its canonical value in this process's settings.</param>
public readonly record struct RoundSettingChange(string Name, string Previous, string Current);
