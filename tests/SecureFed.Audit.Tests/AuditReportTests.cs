using System.Security.Cryptography;

using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

public sealed class AuditReportTests
{
    [Fact]
    public void Render_AggregatorAndAgentsAgree_CrossCheckAllMatchAndChartPresent()
    {
        using var fed = new Federation();
        fed.Run(tamperedSite: null);

        string html = AuditReport.Render(fed.Directories, out int mismatches);

        Assert.Equal(0, mismatches);
        Assert.Contains("4 of 4 masked-input record(s) match; 0 mismatch(es).", html, StringComparison.Ordinal);
        Assert.Contains("<svg", html, StringComparison.Ordinal);
        Assert.Contains("<polyline", html, StringComparison.Ordinal);
        Assert.DoesNotContain("MISMATCH", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http-equiv", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<link", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_AgentDigestDiffers_FlagsBothDirectionsInRed()
    {
        using var fed = new Federation();
        fed.Run(tamperedSite: "h2");

        string html = AuditReport.Render(fed.Directories, out int mismatches);

        Assert.Equal(2, mismatches);
        Assert.Contains("2 of 4 masked-input record(s) match; 2 mismatch(es).", html, StringComparison.Ordinal);
        Assert.Contains("<tr class=\"bad\"><td>aggregator received</td><td>1</td><td>h2</td>", html, StringComparison.Ordinal);
        Assert.Contains("MISMATCH: digest differs: h2 logged sending", html, StringComparison.Ordinal);
        Assert.Contains("<tr class=\"bad\"><td>h2 sent</td>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_SiteLogMissing_FlagsAggregatorRecord()
    {
        using var fed = new Federation();
        fed.Run(tamperedSite: null);

        string html = AuditReport.Render([fed.Directories[0], fed.Directories[1]], out int mismatches);

        Assert.Equal(1, mismatches);
        Assert.Contains("MISMATCH: no log for site h2 was given", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_TamperedLogAndHostileText_ShowsFailedStatusAndEscapesHtml()
    {
        using var fed = new Federation();
        fed.Run(tamperedSite: null, refusalReason: "<script>alert(1)</script>");
        string log = Path.Combine(fed.Directories[1], AuditLog.LogFileName);
        string[] lines = File.ReadAllLines(log);
        lines[1] = lines[1].Replace("\"round\":1", "\"round\":7", StringComparison.Ordinal);
        File.WriteAllLines(log, lines);
        string output = Path.Combine(fed.Root, "report.html");

        AuditReport.Write(fed.Directories, output);

        string html = File.ReadAllText(output);
        Assert.Contains("FAILED</span>: checkpoints/", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script>", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;", html, StringComparison.Ordinal);
    }

    /// <summary>An aggregator and two agents (h1, h2) logging one round with the real event vocabulary.</summary>
    private sealed class Federation : IDisposable
    {
        public Federation()
        {
            Root = Path.Combine(Path.GetTempPath(), "securefed-audit-tests", Guid.NewGuid().ToString("N"));
            Directories = [Path.Combine(Root, "aggregator"), Path.Combine(Root, "h1"), Path.Combine(Root, "h2")];
        }

        public string Root { get; }

        public IReadOnlyList<string> Directories { get; }

        public void Run(string? tamperedSite, string refusalReason = "budget exhausted")
        {
            using Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]);
            using AuditLog aggregator = AuditLog.Open(Directories[0], "aggregator", key, "securefed.test/aggregator");
            using AuditLog h1 = AuditLog.Open(Directories[1], "h1", key, "securefed.test/h1");
            using AuditLog h2 = AuditLog.Open(Directories[2], "h2", key, "securefed.test/h2");
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1", "h2"]).Add("threshold", 2)
                .Add("bit_width", 32).Add("vector_length", 1000).AddObject("dp", d => d.Add("noise_multiplier", 1.1).Add("clip", 1.0)));
            foreach ((AuditLog agent, string site) in new[] { (h1, "h1"), (h2, "h2") })
            {
                byte[] masked = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("masked input of " + site));
                byte[] received = site == tamperedSite ? SHA256.HashData(masked) : masked;
                agent.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
                agent.Append(AuditEvents.MessageSent, f => f.Add("round", 1).Add("message_type", AuditEvents.MaskedInputMessageType).Add("bytes", 4000).AddDigest("sha256", masked));
                agent.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 1).Add("guarantee", "sample-level").Add("epsilon", 0.8).Add("delta", 1e-5));
                aggregator.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", 1).Add("site", site).Add("bytes", 4000).AddDigest("sha256", received));
            }

            h1.Append(AuditEvents.Refusal, f => f.Add("round", 2).Add("reason", refusalReason));
            aggregator.Append(AuditEvents.AggregateProduced, f => f.Add("round", 1).Add("model_version", 2).AddDigest("sha256", new byte[32]).Add("participants", ["h1", "h2"]));
            aggregator.Append(AuditEvents.PrivacySpent, f => f.Add("round", 1).Add("guarantee", "sample-level").Add("epsilon", 0.8).Add("delta", 1e-5));
            aggregator.Append(AuditEvents.PrivacySpent, f => f.Add("round", 2).Add("guarantee", "sample-level").Add("epsilon", 1.3).Add("delta", 1e-5));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
        }

        public void Dispose()
        {
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
        }
    }
}
