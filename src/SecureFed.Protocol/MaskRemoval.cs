namespace SecureFed.Protocol;

/// <summary>
/// One mask to take out of the sum of masked inputs: the PRG stream of <paramref name="Seed"/> under
/// <paramref name="Domain"/> (m words mod 2^b) is subtracted, or added when <paramref name="Add"/> is true.
/// </summary>
/// <param name="Seed">32 bytes: a survivor's self-mask seed b_u, or the pairwise seed of a dropped site and a surviving neighbour.</param>
/// <param name="Domain">The PRG domain (self-mask domain of the owner, or the round's pair-mask domain).</param>
/// <param name="Add">True to add the stream (a pairwise mask the survivor subtracted), false to subtract it.</param>
public sealed record MaskRemoval(byte[] Seed, byte[] Domain, bool Add);
