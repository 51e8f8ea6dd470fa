using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

/// <summary>
/// An aggregator that used a masked input and hides it from the auditor. It accepts h3's input and keeps it in the sum
/// (the unmasking request the agents get names h1, h2 and h3 as survivors, so h1 and h2 reveal h3's self-mask shares
/// and each charges ρ for 3 survivors), but never answers h3's AwaitSurvivors (h3 times out and logs nothing more in the
/// round) and writes its own log as if h3 dropped at masked_input: no receipt, a dropout, survivors [h1, h2], no b-share
/// of h3, aggregate participants [h1, h2]. The sent-without-receipt row alone reads as a site killed during its upload
/// (a note since 740d7bd); the sites' signed site-level charges contradict the aggregator's account. Found by two
/// reviews of session 46: the first (this ρ check, 8d15b48), the second (its evasions; the survivors check, 3d29fdf).
/// </summary>
public sealed class AuditHiddenInputTests
{
    private const double Rho3 = 0.1;  // ρ for 3 survivors (what the sites charged)
    private const double Rho2 = 0.15; // ρ for the 2 survivors the aggregator's log names

    /// <summary>Sites of an earlier version (no survivors in their charge): their ρ, below the aggregator's ρ of 2 survivors, fails the audit.</summary>
    [Fact]
    public void Create_HiddenInput_SitesChargedTheRhoOfMoreSurvivors_Fails()
    {
        AuditReportResult result = Run(rho: Rho2, note: null, sitesNameSurvivors: false);

        Assert.False(result.Passed, "the audit passed although h1's and h2's signed site-level ρ (3 survivors) contradict the aggregator's 2 survivors; notes: " + string.Join(" | ", result.Notes));
        Assert.Contains(result.Problems, p => p.Contains("h1 charged site-level ρ 0.1", StringComparison.Ordinal) && p.Contains("told of more survivors", StringComparison.Ordinal));
    }

    /// <summary>
    /// The aggregator charges the ρ of its 2 logged survivors with a note (any text): the ρ check skips charges with a
    /// note and the coverage check is satisfied (ρ(2) ≥ ρ(3)); the survivors the sites name are not the logged ones.
    /// </summary>
    [Fact]
    public void Create_HiddenInput_AggregatorChargeCarriesANote_FailsOnTheSurvivors()
    {
        AuditReportResult result = Run(rho: Rho2, note: "charged as planned", sitesNameSurvivors: true);

        Assert.False(result.Passed, "the audit passed: the aggregator hid h3's input and only added a note to its charge of the completed round; problems: " + string.Join(" | ", result.Problems));
        Assert.Contains(result.Problems, p => p.Contains("h1 answered an unmasking request naming the survivors [h1, h2, h3]", StringComparison.Ordinal));
    }

    /// <summary>
    /// The aggregator charges the ρ the sites charged (that of the 3 survivors it really used), no note, while its log
    /// names 2 survivors and 2 participants: every ρ check passes; the survivors the sites name do not.
    /// </summary>
    [Fact]
    public void Create_HiddenInput_AggregatorChargesTheSitesRho_FailsOnTheSurvivors()
    {
        AuditReportResult result = Run(rho: Rho3, note: null, sitesNameSurvivors: true);

        Assert.False(result.Passed, "the audit passed: the aggregator hid h3's input and charged the ρ of 3 survivors while its log names 2; problems: " + string.Join(" | ", result.Problems));
        Assert.Contains(result.Problems, p => p.Contains("but the aggregator's log names [h1, h2] as the aggregate's participants", StringComparison.Ordinal));
    }

    /// <summary>
    /// The logs of the scenario: h3's input used, its receipt hidden, h3 logged as a dropout; the aggregator charges the
    /// completed round <paramref name="rho"/> (with <paramref name="note"/> when not null); h1 and h2 charge ρ of the 3
    /// survivors they were told of, naming them when <paramref name="sitesNameSurvivors"/> (agents since session 46).
    /// </summary>
    private static AuditReportResult Run(double rho, string? note, bool sitesNameSurvivors)
    {
        string root = Path.Combine(Path.GetTempPath(), "securefed-audit-review", Guid.NewGuid().ToString("N"));
        string[] sites = ["h1", "h2", "h3"];
        string[] dirs = [Path.Combine(root, "aggregator"), .. sites.Select(s => Path.Combine(root, s))];
        try
        {
            using (Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]))
            using (AuditLog aggregator = AuditLog.Open(dirs[0], "aggregator", key, "securefed.test/aggregator"))
            using (AuditLog h1 = AuditLog.Open(dirs[1], "h1", key, "securefed.test/h1"))
            using (AuditLog h2 = AuditLog.Open(dirs[2], "h2", key, "securefed.test/h2"))
            using (AuditLog h3 = AuditLog.Open(dirs[3], "h3", key, "securefed.test/h3"))
            {
                AuditLog[] agents = [h1, h2, h3];
                const int round = 1;
                aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", round).Add("session", "s1").Add("cohort", sites).Add("threshold", 2)
                    .Add("bit_width", 32).Add("vector_length", 1000).Add("model_version", 0)
                    .AddObject("dp", d => d.Add("dp_sgd_noise_multiplier", 1.1).Add("l2_clip", 1.0)));
                for (int i = 0; i < agents.Length; i++)
                {
                    string site = sites[i];
                    byte[] masked = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"masked input of {site} in round {round}"));
                    agents[i].Append(AuditEvents.RoundJoined, f => f.Add("round", round));
                    agents[i].Append(AuditEvents.MessageSent, f => f.Add("round", round).Add("message_type", AuditEvents.MaskedInputMessageType).Add("bytes", 4000).AddDigest("sha256", masked));
                    agents[i].Append(AuditEvents.PrivacyLedger, f => f.Add("round", round).Add("guarantee", "record").Add("epsilon", 0.8).Add("delta", 1e-5).Add("budget", 8));
                    if (site != "h3")
                    {
                        aggregator.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", round).Add("site", site).Add("bytes", 4000).AddDigest("sha256", masked));
                    }
                }

                aggregator.Append(AuditEvents.Dropout, f => f.Add("round", round).Add("stage", "masked_input").Add("sites", new[] { "h3" }));
                aggregator.Append(AuditEvents.UnmaskRequested, f => f.Add("round", round).Add("survivors", new[] { "h1", "h2" }).Add("dropped", new[] { "h3" }));
                foreach (AuditLog agent in new[] { h1, h2 })
                {
                    agent.Append(AuditEvents.MessageSent, f => f.Add("round", round).Add("message_type", "consistency").Add("bytes", 127).AddDigest("sha256", new byte[32]));
                    agent.Append(AuditEvents.PrivacyLedger, f =>
                    {
                        f.Add("round", round).Add("guarantee", "site").Add("epsilon", TestLog.SiteEpsilon(Rho3)).Add("delta", 1e-5).Add("budget", 10).Add("rho", Rho3);
                        if (sitesNameSurvivors)
                        {
                            f.Add("survivors", sites);
                        }
                    });
                    agent.Append(AuditEvents.MessageSent, f => f.Add("round", round).Add("message_type", "unmask").Add("bytes", 300).AddDigest("sha256", new byte[32]));
                }

                foreach (string site in new[] { "h1", "h2" })
                {
                    aggregator.Append(AuditEvents.UnmaskResponse, f => f.Add("round", round).Add("site", site).Add("b_shares", 2).Add("s_shares", 1).Add("b_share_owners", new[] { "h1", "h2" }));
                }

                aggregator.Append(AuditEvents.AggregateProduced, f => f.Add("round", round).Add("model_version", 1).AddDigest("sha256", new byte[32]).Add("participants", new[] { "h1", "h2" }));
                aggregator.Append(AuditEvents.PrivacySpent, f =>
                {
                    f.Add("round", round).Add("guarantee", "site").Add("rho", rho).Add("epsilon", TestLog.SiteEpsilon(rho)).Add("delta", 1e-5).Add("budget", 1e12);
                    if (note is not null)
                    {
                        f.Add("note", note);
                    }
                });
                aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", round));
                foreach (AuditLog log in new[] { aggregator, h1, h2, h3 })
                {
                    log.Checkpoint();
                }
            }

            return AuditReport.Create(dirs);
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
        }
    }
}
