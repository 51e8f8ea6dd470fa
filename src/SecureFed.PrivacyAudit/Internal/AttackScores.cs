namespace SecureFed.PrivacyAudit.Internal;

/// <summary>log p(tags | tokens) under one model of every <see cref="AttackTargets"/> population, in the same order.</summary>
internal sealed record AttackScores(double[][] Exposure, double[] Audit, double[] Group, double[] Natural);
