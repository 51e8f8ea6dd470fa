using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

/// <summary>An aggregator that hides a masked input it received and used (found by a review of the note for inputs never received).</summary>
public sealed class AuditHiddenInputTests
{
    /// <summary>
    /// A dishonest aggregator accepts h3's masked input and keeps it in the sum (the unmasking request the agents get names
    /// h1, h2 and h3 as survivors, so h1 and h2 reveal h3's self-mask shares and each charges ρ for 3 survivors), but it
    /// never answers h3's AwaitSurvivors (h3 times out and logs nothing more in the round: the agent writes no audit
    /// line for a round that ends with an RPC deadline) and writes its own log as if h3 dropped at masked_input:
    /// no receipt, a dropout, survivors [h1, h2], no b-share of h3, aggregate participants [h1, h2]. h3's input is in
    /// the model and h3 never charged its site-level ledger for it. Before 740d7bd the sent-without-receipt row failed
    /// the audit; now it is a note and the report passes, although two signed site logs (h1's and h2's ρ, which is
    /// that of 3 survivors, not of the 2 the aggregator logged) contradict the aggregator's account.
    /// </summary>
    [Fact]
    public void Create_AggregatorHidesAReceivedInputAsADropout_SitesChargedTheRhoOfMoreSurvivors_Fails()
    {
        string root = Path.Combine(Path.GetTempPath(), "securefed-audit-review", Guid.NewGuid().ToString("N"));
        string[] sites = ["h1", "h2", "h3"];
        string[] dirs = [Path.Combine(root, "aggregator"), .. sites.Select(s => Path.Combine(root, s))];
        const double rho3 = 0.1;  // ρ for 3 survivors (what the sites charged)
        const double rho2 = 0.15; // ρ for 2 survivors (what the aggregator charges for its logged survivors)
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

                // The aggregator's account: h3 dropped at masked_input.
                aggregator.Append(AuditEvents.Dropout, f => f.Add("round", round).Add("stage", "masked_input").Add("sites", new[] { "h3" }));
                aggregator.Append(AuditEvents.UnmaskRequested, f => f.Add("round", round).Add("survivors", new[] { "h1", "h2" }).Add("dropped", new[] { "h3" }));
                foreach (AuditLog agent in new[] { h1, h2 })
                {
                    agent.Append(AuditEvents.MessageSent, f => f.Add("round", round).Add("message_type", "consistency").Add("bytes", 127).AddDigest("sha256", new byte[32]));
                    // What the agents really saw: 3 survivors (h3 included), so ρ of 3 survivors.
                    agent.Append(AuditEvents.PrivacyLedger, f => f.Add("round", round).Add("guarantee", "site").Add("epsilon", 0.5).Add("delta", 1e-5).Add("budget", 10).Add("rho", rho3));
                    agent.Append(AuditEvents.MessageSent, f => f.Add("round", round).Add("message_type", "unmask").Add("bytes", 300).AddDigest("sha256", new byte[32]));
                }

                foreach (string site in new[] { "h1", "h2" })
                {
                    aggregator.Append(AuditEvents.UnmaskResponse, f => f.Add("round", round).Add("site", site).Add("b_shares", 2).Add("s_shares", 1).Add("b_share_owners", new[] { "h1", "h2" }));
                }

                aggregator.Append(AuditEvents.AggregateProduced, f => f.Add("round", round).Add("model_version", 1).AddDigest("sha256", new byte[32]).Add("participants", new[] { "h1", "h2" }));
                aggregator.Append(AuditEvents.PrivacySpent, f => f.Add("round", round).Add("guarantee", "site").Add("rho", rho2).Add("epsilon", 1.0).Add("delta", 1e-5).Add("budget", 1e12));
                aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", round));
                foreach (AuditLog log in new[] { aggregator, h1, h2, h3 })
                {
                    log.Checkpoint();
                }
            }

            AuditReportResult result = AuditReport.Create(dirs);

            // The note says "no log shows the input reached the aggregator", which h1's and h2's signed ρ contradict.
            Assert.False(result.Passed, "the audit passed although h1's and h2's signed site-level ρ (3 survivors) contradict the aggregator's 2 survivors; notes: " + string.Join(" | ", result.Notes));
            Assert.Contains(result.Problems, p => p.Contains("h1 charged site-level ρ 0.1", StringComparison.Ordinal) && p.Contains("told of more survivors", StringComparison.Ordinal));
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
