using System.Globalization;
using SecureFed.Experiments;

namespace SecureFed.PrivacyAudit;

/// <summary>Settings of <c>securefed privacy audit</c>: the federated recipe (as <c>securefed experiment</c>) plus the audit's populations.</summary>
public sealed record PrivacyAuditOptions
{
    /// <summary>
    /// The federation and training recipe: data folder, sites, split, rounds, DP-SGD settings, δ, model config. Its
    /// <see cref="ExperimentOptions.Epsilons"/> and <see cref="ExperimentOptions.Seeds"/> are not used (see <see cref="Epsilons"/> and <see cref="Seed"/>).
    /// </summary>
    /// <value>The default value is the experiment's defaults (a data folder must be set).</value>
    public ExperimentOptions Experiment { get; init; } = new();

    /// <summary>Patient-level ε of the DP arms (δ of <see cref="Experiment"/>), each at least <see cref="EpsilonText.Minimum"/>.</summary>
    /// <value>The default value is 8, 3.</value>
    public IReadOnlyList<double> Epsilons { get; init; } = [8, 3];

    /// <summary>Also run the arm without DP (the test's power check).</summary>
    /// <value>The default value is true.</value>
    public bool IncludeNoDp { get; init; } = true;

    /// <summary>Seed of the split, the model and the canaries.</summary>
    /// <value>The default value is 1.</value>
    public int Seed { get; init; } = 1;

    /// <summary>k, the secret canaries whose exposure is measured.</summary>
    /// <value>The default value is 10.</value>
    public int Canaries { get; init; } = 10;

    /// <summary>r, how many times each secret canary is inserted into site-1's data.</summary>
    /// <value>The default value is 10.</value>
    public int Repeats { get; init; } = 10;

    /// <summary>n, never-inserted candidates each canary is ranked against.</summary>
    /// <value>The default value is 2000.</value>
    public int Candidates { get; init; } = 2000;

    /// <summary>m, audit canaries each inserted once with probability ½ (the one-run ε lower bound).</summary>
    /// <value>The default value is 200.</value>
    public int AuditCanaries { get; init; } = 200;

    /// <summary>
    /// m_g, group canaries: each is inserted <see cref="GroupSize"/> times with probability ½ (all copies or none). A
    /// second one-run audit on them bounds ε for a group of <see cref="GroupSize"/> sentences, the unit group privacy
    /// covers; it has power without DP when the group is large enough to be memorised.
    /// </summary>
    /// <value>The default value is 40.</value>
    public int GroupCanaries { get; init; } = 40;

    /// <summary>r_g, the copies of each included group canary (the size of the group the second audit bounds).</summary>
    /// <value>The default value is 10.</value>
    public int GroupSize { get; init; } = 10;

    /// <summary>The reference model of the calibrated score.</summary>
    /// <value>The default value is <see cref="AuditReference.WithoutSite"/>.</value>
    public AuditReference Reference { get; init; } = AuditReference.WithoutSite;

    /// <summary>Site-1 sentences each kept in training with probability ½ (membership inference; capped at half the site).</summary>
    /// <value>The default value is 400.</value>
    public int AuditSentences { get; init; } = 400;

    /// <summary>1 − confidence of the ε lower bounds.</summary>
    /// <value>The default value is 0.05.</value>
    public double PValue { get; init; } = 0.05;

    /// <summary>Output folder (privacy-audit.json, privacy-audit-roc.png, privacy-audit-exposure.png).</summary>
    /// <value>The default value is "privacy-audit-out".</value>
    public string OutputDirectory { get; init; } = "privacy-audit-out";

    /// <summary>Checks the options; the message names the option that is wrong.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Experiment);
        Experiment.Validate();
        if (Experiment.Split == ExperimentSplit.ByCorpus)
        {
            throw new ArgumentException("the privacy audit splits one corpus folder (--data) across the sites; by-corpus is not supported.");
        }

        if (Reference == AuditReference.WithoutSite && Experiment.Sites < 2)
        {
            throw new ArgumentException("--reference without-site trains the federation without site-1: it needs --sites 2 or more.");
        }

        if (!IncludeNoDp && Epsilons.Count == 0)
        {
            throw new ArgumentException("--epsilon none with --skip-no-dp leaves no arm to audit: give at least one --epsilon, or drop --skip-no-dp.");
        }

        foreach (double e in Epsilons)
        {
            if (EpsilonText.Problem("--epsilon", e, Experiment.Delta) is string badEpsilon)
            {
                throw new ArgumentException(badEpsilon);
            }
        }

        NonNegative(Canaries, "--canaries");
        Positive(Repeats, "--repeats");
        Positive(Candidates, "--candidates");
        NonNegative(AuditCanaries, "--audit-canaries");
        NonNegative(AuditSentences, "--audit-sentences");
        NonNegative(GroupCanaries, "--group-canaries");
        Positive(GroupSize, "--group-size");
        Positive(Seed, "--seed");
        if ((2 * Canaries) + AuditCanaries + GroupCanaries > CanaryGeneratorSpaceLimit)
        {
            throw new ArgumentException($"2 × --canaries + --audit-canaries + --group-canaries must stay below {CanaryGeneratorSpaceLimit} (a small part of the 512,000 canary names).");
        }

        if (!(PValue > 0 && PValue < 1))
        {
            throw new ArgumentException($"--p-value must be in (0, 1); got {PValue.ToString(CultureInfo.InvariantCulture)}.");
        }
    }

    private const int CanaryGeneratorSpaceLimit = 50_000;

    private static void Positive(int value, string name)
    {
        if (value < 1)
        {
            throw new ArgumentException($"{name} must be at least 1, not {value}.");
        }
    }

    private static void NonNegative(int value, string name)
    {
        if (value < 0)
        {
            throw new ArgumentException($"{name} must be 0 or more, not {value}.");
        }
    }
}
