using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

/// <summary>
/// Review of 8d15b48: the check "a site's site-level ρ clearly below the aggregator's own charge of a completed round"
/// compares two numbers the dishonest aggregator writes itself (its ρ and whether the line has a note); nothing tied the
/// aggregator's ρ to the survivors and participants its own log names. The same hidden-input scenario as
/// <see cref="AuditHiddenInputTests"/>, with the aggregator's privacy.spent written the two obvious other ways. Now the
/// sites' site-level charges name the survivors of the signed request they answered, and the report compares those
/// with the aggregator's logged survivors and participants.
/// </summary>
public sealed class AuditHiddenInputEvasionTests
{
    private const double Rho3 = 0.1;  // ρ for 3 survivors (what the sites charged)
    private const double Rho2 = 0.15; // ρ for the 2 survivors the aggregator's log names

    /// <summary>
    /// The aggregator logs its charge of the completed round with ρ of its 2 logged survivors but adds a note (any text):
    /// the new check skips every charge with a note, and the coverage check is satisfied (ρ(2) ≥ ρ(3)). Nothing checks
    /// that a completed round's charge has no note.
    /// </summary>
    [Fact]
    public void Create_HiddenInput_AggregatorChargeCarriesANote_Fails()
    {
        AuditReportResult result = Run(rho: Rho2, note: "charged as planned");
        Assert.False(result.Passed, "the audit passed: the aggregator hid h3's input and only added a note to its charge of the completed round; problems: " + string.Join(" | ", result.Problems));
        Assert.Contains(result.Problems, p => p.Contains("h1 answered an unmasking request naming the survivors [h1, h2, h3]", StringComparison.Ordinal));
    }

    /// <summary>
    /// The aggregator logs its charge of the completed round with the ρ the sites charged (that of the 3 survivors it
    /// really used), no note, while its log names only 2 survivors and 2 participants. Both checks compare only ρ values,
    /// so the report passes; ρ(3) is not the ρ of the 2 survivors and participants that log names.
    /// </summary>
    [Fact]
    public void Create_HiddenInput_AggregatorChargesTheSitesRho_Fails()
    {
        AuditReportResult result = Run(rho: Rho3, note: null);
        Assert.False(result.Passed, "the audit passed: the aggregator hid h3's input and charged the ρ of 3 survivors while its log names 2; problems: " + string.Join(" | ", result.Problems));
        Assert.Contains(result.Problems, p => p.Contains("but the aggregator's log names [h1, h2] as the aggregate's participants", StringComparison.Ordinal));
    }

    private static AuditReportResult Run(double rho, string? note)
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
                    agent.Append(AuditEvents.PrivacyLedger, f => f.Add("round", round).Add("guarantee", "site").Add("epsilon", 0.5).Add("delta", 1e-5).Add("budget", 10).Add("rho", Rho3).Add("survivors", sites));
                    agent.Append(AuditEvents.MessageSent, f => f.Add("round", round).Add("message_type", "unmask").Add("bytes", 300).AddDigest("sha256", new byte[32]));
                }

                foreach (string site in new[] { "h1", "h2" })
                {
                    aggregator.Append(AuditEvents.UnmaskResponse, f => f.Add("round", round).Add("site", site).Add("b_shares", 2).Add("s_shares", 1).Add("b_share_owners", new[] { "h1", "h2" }));
                }

                aggregator.Append(AuditEvents.AggregateProduced, f => f.Add("round", round).Add("model_version", 1).AddDigest("sha256", new byte[32]).Add("participants", new[] { "h1", "h2" }));
                aggregator.Append(AuditEvents.PrivacySpent, f =>
                {
                    f.Add("round", round).Add("guarantee", "site").Add("rho", rho).Add("epsilon", 1.0).Add("delta", 1e-5).Add("budget", 1e12);
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
