using System.Globalization;
using System.Security.Cryptography;

using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

public sealed class AuditReportTests
{
    [Fact]
    public void Create_AggregatorAndAgentsAgree_VerdictPassesWithCountsFirst()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        Assert.Equal(0, result.CrossCheckMismatches);
        Assert.Equal(2, result.RoundsCompleted);
        Assert.Equal(0, result.RoundsAborted);
        Assert.Equal(
            "PASSED: all 3 logs intact, 2 rounds completed, 0 aborted, 0 dropouts, 0 cross-check discrepancies, every site within its patient-level ε budget." +
            " Keys not pinned: each log was checked against its own verifier.key (pin them with --key).",
            result.Verdict);
        string html = result.Html;
        Assert.Contains("<h2 id=\"verdict-heading\">Verdict: PASSED</h2>\n<p id=\"verdict-text\"><strong>all 3 logs intact, 2 rounds completed,", html, StringComparison.Ordinal);
        Assert.True(html.IndexOf("id=\"verdict\"", StringComparison.Ordinal) < html.IndexOf("id=\"epsilon-chart\"", StringComparison.Ordinal));
        Assert.True(html.IndexOf("id=\"epsilon-chart\"", StringComparison.Ordinal) < html.IndexOf("id=\"participation\"", StringComparison.Ordinal));
        Assert.True(html.IndexOf("id=\"participation\"", StringComparison.Ordinal) < html.IndexOf("id=\"details\"", StringComparison.Ordinal));
        Assert.Contains("8 of 8 masked-input record(s) match; 0 mismatch(es).", html, StringComparison.Ordinal);
        Assert.DoesNotContain("MISMATCH", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<link", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http-equiv", html, StringComparison.Ordinal);
        Assert.DoesNotContain("src=", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_SiteLoggedALedgerRepair_VerifiesPassesAndListsItUnderRepairsWithItsFields()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1);
        using (Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]))
        using (AuditLog h1 = AuditLog.Open(fed.Directories[1], "h1", key, "securefed.test/h1"))
        {
            // As 'securefed privacy ledger repair --apply' writes it.
            h1.Append(AuditEvents.PrivacyLedgerRepaired, f => f.Add("file", "privacy-ledger.jsonl").Add("line", 4).Add("bytes", 150).AddDigest("sha256", new byte[32])
                .Add("original_bytes", 1000).Add("kept_bytes", 850).Add("kept_sha256", new string('1', 64)).Add("backup", "privacy-ledger.jsonl.torn-20261206T073000000Z")
                .Add("entries", 2).AddObject("kept", k => k.AddObject("record", r => r.Add("entries", 1).Add("epsilon", 0.8).Add("delta", 1e-5))));
            h1.Checkpoint();
        }

        AuditVerification verified = AuditVerifier.Verify(fed.Directories[1]);
        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.True(verified.Ok, verified.FirstProblem);
        Assert.Equal(0, verified.UncoveredLines);
        Assert.True(result.Passed, string.Join("\n", result.Problems));
        string incidents = result.Html[result.Html.IndexOf("<h3 id=\"incidents\">Refusals, errors and repairs</h3>", StringComparison.Ordinal)..];
        Assert.Contains("<td>h1</td>", incidents, StringComparison.Ordinal);
        Assert.Contains("<td>privacy.ledger_repaired</td>", incidents, StringComparison.Ordinal);
        Assert.Contains("<dt>backup</dt><dd>privacy-ledger.jsonl.torn-20261206T073000000Z</dd>", incidents, StringComparison.Ordinal);
        Assert.Contains("<dt>kept.record.epsilon</dt><dd>0.8</dd>", incidents, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_FederatedEvaluationLogged_TableShowsScorePerRoundAndWithheldReason()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2, federatedEvaluation: true);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        string html = result.Html;
        Assert.Contains("<h3 id=\"federated-evaluation\">Federated evaluation</h3>", html, StringComparison.Ordinal);
        Assert.Contains("<th scope=\"col\">F1 Disease</th><th scope=\"col\">F1 Drug</th>", html, StringComparison.Ordinal);
        Assert.Matches("<tr><td class=\"num\">1</td><td class=\"num\">0</td><td class=\"num\"[^>]*>2</td><td class=\"num\"[^>]*>0.750</td><td class=\"num\"[^>]*>0.600</td><td class=\"num\"[^>]*><strong>0.667</strong></td><td class=\"num\"[^>]*>0.800</td><td class=\"num\"[^>]*>0.500</td>", html);
        Assert.Contains("withheld: only 1 of 2 contributors scored the model", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_NoFederatedEvaluation_NoSection()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1);

        Assert.DoesNotContain("federated-evaluation", AuditReport.Create(fed.Directories).Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_PatientEpsilonLogged_ChartHasOneSeriesPerSiteWithBudgetAndCitesLogLines()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2);

        string html = AuditReport.Create(fed.Directories).Html;

        Assert.Contains("<g class=\"series\" data-site=\"h1\">", html, StringComparison.Ordinal);
        Assert.Contains("<g class=\"series\" data-site=\"h2\">", html, StringComparison.Ordinal);
        Assert.Contains("budget ε = 8</text>", html, StringComparison.Ordinal);
        Assert.Contains("h1: ε 0.8 after round 1, 1.6 after round 2; budget 8.", html, StringComparison.Ordinal);
        // h1's log: 1 log.opened, then per round joined, sent, ledger: the round-1 ledger is line 4.
        Assert.Contains("h1: ε 0.8 after round 1 (budget 8) — h1 audit.jsonl line 4</title>", html, StringComparison.Ordinal);
        // The site-level ε is in the details, not in the chart.
        Assert.DoesNotContain("data-site=\"aggregator\"", html, StringComparison.Ordinal);
        Assert.Contains("Site-level ε", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_RoundParameters_NamedFieldsWithUnitsNotJson()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2);

        string html = AuditReport.Create(fed.Directories).Html;

        Assert.Contains("<th scope=\"row\">DP-SGD noise multiplier σ</th><td class=\"num\"><span title=\"aggregator audit.jsonl lines 2, 8\">1.1</span> <span class=\"muted\">(every round)</span></td><td>× C</td>", html, StringComparison.Ordinal);
        Assert.Contains("<th scope=\"row\">bit width</th>", html, StringComparison.Ordinal);
        Assert.Contains("<td>bits</td>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("{&quot;", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_EveryRoundParameterTheAggregatorLogs_NamedWithUnitNotItsFieldPath()
    {
        using var fed = new Federation();
        Directory.CreateDirectory(fed.Root);
        using (Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]))
        using (AuditLog aggregator = AuditLog.Open(fed.Directories[0], "aggregator", key, "securefed.test/aggregator"))
        {
            // Every field RoundCoordinator writes into round.opened, as it writes them.
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("session", "s1").Add("cohort", ["h1", "h2"]).Add("threshold", 2)
                .Add("graph_degree", 1).Add("graph_policy", "complete").Add("bit_width", 32).Add("vector_length", 1000).Add("model_version", 0)
                .Add("federated_evaluation", true)
                .AddObject("dp", d => d.Add("l2_clip", 30.0).Add("site_noise_multiplier", 0.0005).Add("sigma_site_quantized", 251952.0).Add("scale", 23754255.0)
                    .Add("delta", 1e-5).Add("dp_sgd_noise_multiplier", 1.49).Add("dp_sgd_max_grad_norm", 2.0).Add("dp_sgd_sample_rate", 0.3).Add("local_epochs", 7)
                    .Add("dp_sgd_max_steps", 20).Add("dp_sgd_noise_shares", 0).Add("dp_sgd_layer_scales", 0).Add("dp_sgd_layer_scales_sha256", "")));
        }

        string html = AuditReport.Create([fed.Directories[0]]).Html;

        Assert.DoesNotContain("<th scope=\"row\">dp.", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<th scope=\"row\">federated_evaluation", html, StringComparison.Ordinal);
        Assert.Contains("<th scope=\"row\">DP-SGD step cap</th>", html, StringComparison.Ordinal);
        Assert.Contains("<th scope=\"row\">patient-level noise shares k</th>", html, StringComparison.Ordinal);
        Assert.Contains("<th scope=\"row\">federated evaluation</th>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_TamperedLog_VerdictFailsAndNamesTheLog()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1);
        string log = Path.Combine(fed.Directories[1], AuditLog.LogFileName);
        string[] lines = File.ReadAllLines(log);
        lines[1] = lines[1].Replace("\"round\":1", "\"round\":7", StringComparison.Ordinal);
        File.WriteAllLines(log, lines);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.False(result.Passed);
        Assert.Equal(1, result.FailedLogs);
        Assert.StartsWith("FAILED: 1 of 3 logs failed verification (h1)", result.Verdict, StringComparison.Ordinal);
        string problem = Assert.Single(result.Problems);
        Assert.StartsWith("The log of h1 (", problem, StringComparison.Ordinal);
        Assert.Contains("failed verification: checkpoints/", problem, StringComparison.Ordinal);
        Assert.EndsWith("Nothing it logged can be trusted, including what this report shows from it.", problem, StringComparison.Ordinal);
        Assert.Contains("h1<tspan fill=\"#b00020\"> (log FAILED)</tspan>", result.Html, StringComparison.Ordinal);
        Assert.Contains("<h2 id=\"verdict-heading\">Verdict: FAILED</h2>", result.Html, StringComparison.Ordinal);
        Assert.Contains("<ol class=\"problems\" id=\"problems\">\n<li>The log of h1 (", result.Html, StringComparison.Ordinal);
        Assert.Contains("<title>SecureFed audit report: FAILED</title>", result.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_LogWithAGarbageLine_ProblemReadsAsOneSentence()
    {
        // The JSON parser's message ends with a period: "… BytePositionInLine: 0.. Nothing it logged …".
        using var fed = new Federation();
        fed.Run(rounds: 1);
        File.AppendAllText(Path.Combine(fed.Directories[1], AuditLog.LogFileName), "garbage\n");

        string problem = Assert.Single(AuditReport.Create(fed.Directories).Problems);

        Assert.Contains("is not valid JSON", problem, StringComparison.Ordinal);
        Assert.Contains("BytePositionInLine: 0. Nothing it logged can be trusted", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_AbortedRoundWithDropout_CountedAndShownInMatrixWithoutFailing()
    {
        using var fed = new Federation();
        fed.Run(rounds: 3, abortRound: 2);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        Assert.Equal(2, result.RoundsCompleted);
        Assert.Equal(1, result.RoundsAborted);
        Assert.Equal(1, result.Dropouts);
        Assert.Contains("2 rounds completed, 1 aborted, 1 dropout,", result.Verdict, StringComparison.Ordinal);
        Assert.Contains("<td class=\"drop\" title=\"h2 dropped at masked input in round 2 — aggregator audit.jsonl line", result.Html, StringComparison.Ordinal);
        Assert.Contains(">✗ masked input</td>", result.Html, StringComparison.Ordinal);
        Assert.Contains("<td class=\"bad\" title=\"aborted at masked input: fewer than t masked inputs — aggregator audit.jsonl line", result.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_AbortWithoutRoundAfterRestart_EveryOpenRoundCountedAsAborted()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1, openRounds: [2, 3], restartAbort: true);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.Equal(1, result.RoundsCompleted);
        Assert.Equal(2, result.RoundsAborted);
    }

    [Fact]
    public void Create_RoundLeftOpen_NotedNotFailed()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1, openRounds: [2]);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.True(result.Passed);
        Assert.Contains("Round 2 was opened (aggregator audit.jsonl line", result.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_PatientEpsilonOverBudget_VerdictFailsNamingSiteRoundAndLine()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2, overBudgetSite: "h2");

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.False(result.Passed);
        Assert.Equal(["h2"], result.SitesOverBudget);
        Assert.StartsWith("FAILED: patient-level ε over budget at h2.", result.Verdict, StringComparison.Ordinal);
        Assert.Equal("h2 spent patient-level ε 9.5 by round 2, over its budget of 8 (h2 audit.jsonl line 7).", Assert.Single(result.Problems));
        Assert.Contains("OVER BUDGET", result.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_BudgetFarAboveEpsilon_AxisFollowsEpsilonAndBudgetNamedOffScale()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2, budget: 1000);

        string html = AuditReport.Create(fed.Directories).Html;

        Assert.Contains(">budget ε = 1000: above this scale ↑</text>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<g class=\"budget\">", html, StringComparison.Ordinal);
        Assert.Contains(">ε 1.6 of 1000 after round 2</text>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_EpsilonWithoutBudget_NotedAndNotFlagged()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1, logBudget: false);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.True(result.Passed);
        Assert.Contains("h1 did not log its patient-level ε budget", result.Html, StringComparison.Ordinal);
        Assert.Contains("(no budget logged)", result.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_AgentDigestDiffers_FlagsBothDirectionsAndFailsVerdict()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1, tamperedSite: "h2");

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.Equal(2, result.CrossCheckMismatches);
        Assert.False(result.Passed);
        Assert.StartsWith("FAILED: 2 cross-check discrepancies.", result.Verdict, StringComparison.Ordinal);
        Assert.StartsWith("2 masked-input cross-check discrepancies: round 1, aggregator received (aggregator audit.jsonl line", Assert.Single(result.Problems), StringComparison.Ordinal);
        string html = result.Html;
        Assert.Contains("2 of 4 masked-input record(s) match; 2 mismatch(es).", html, StringComparison.Ordinal);
        Assert.Contains("<tr class=\"bad\"><td>aggregator received</td><td class=\"num\">1</td><td>h2</td>", html, StringComparison.Ordinal);
        Assert.Contains("MISMATCH: digest differs: h2 logged sending", html, StringComparison.Ordinal);
        Assert.Contains("<tr class=\"bad\"><td>h2 sent</td>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_SiteKilledDuringUpload_NotReceivedIsANoteNotADiscrepancy()
    {
        // h2 logs its masked input before the upload (as the agent does) and is killed during it: the aggregator never
        // gets it, logs h2 as a dropout and aborts the round. An honest crash, not a hidden receipt.
        using var fed = new Federation();
        fed.Run(rounds: 2, abortRound: 2, cutShortUpload: true);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        Assert.Equal(0, result.CrossCheckMismatches);
        string note = Assert.Single(result.Notes, n => n.StartsWith("h2 logged sending its masked input in round 2", StringComparison.Ordinal));
        Assert.Contains("the aggregator did not receive it: the aggregator logged h2 as a dropout of round 2 at masked_input (aggregator audit.jsonl line", note, StringComparison.Ordinal);
        Assert.Contains("as when a site stops during its upload", note, StringComparison.Ordinal);
        string html = result.Html;
        Assert.Contains("6 of 7 masked-input record(s) match; 1 sent but not received", html, StringComparison.Ordinal);
        Assert.Contains("<tr class=\"note\"><td>h2 sent</td><td class=\"num\">2</td>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("MISMATCH", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_SiteWentOnAfterAnUploadTheAggregatorDidNotLog_FailsAsDiscrepancy()
    {
        // h2 sent its consistency message after the upload, which it does only once the aggregator accepted the upload.
        using var fed = new Federation();
        fed.Run(rounds: 2, abortRound: 2, cutShortUpload: true, wentOnAfterUpload: true);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.False(result.Passed);
        Assert.Equal(1, result.CrossCheckMismatches);
        Assert.Contains("round 2, h2 sent (h2 audit.jsonl line", Assert.Single(result.Problems), StringComparison.Ordinal);
        Assert.Contains("the aggregator did not log receiving this input, but it must have received it: h2 went on in the round after its upload (h2 audit.jsonl line", Assert.Single(result.Problems), StringComparison.Ordinal);
        Assert.DoesNotContain(result.Notes, n => n.Contains("did not receive it", StringComparison.Ordinal));
    }

    [Fact]
    public void Create_AggregatorUsedAnInputButDeletedItsReceipt_FailsAsDiscrepancy()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2, receiptDeletedSite: "h2");

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.False(result.Passed);
        Assert.Equal(1, result.CrossCheckMismatches);
        Assert.StartsWith("FAILED: 1 cross-check discrepancy; 1 other problem.", result.Verdict, StringComparison.Ordinal);
        Assert.Equal(2, result.Problems.Count);
        Assert.StartsWith("aggregator audit.jsonl line 4: the aggregate of round 1 names h2 as a participant, but no aggregator log given shows h2's masked input of round 1 received", result.Problems[0], StringComparison.Ordinal);
        string problem = result.Problems[1];
        Assert.StartsWith("1 masked-input cross-check discrepancy: round 1, h2 sent (h2 audit.jsonl line", problem, StringComparison.Ordinal);
        Assert.Contains("the aggregator did not log receiving this input, but it must have received it: the round's aggregate names h2 among its participants (aggregator audit.jsonl line", problem, StringComparison.Ordinal);
        Assert.Contains("<tr class=\"bad\"><td>h2 sent</td><td class=\"num\">1</td>", result.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_SitesChargedARoundTheFederationDidNot_Fails()
    {
        // Round 2 aborted after its unmasking request: both sites charged it (they revealed their shares), the aggregator did not.
        using var fed = new Federation();
        fed.Run(rounds: 3, siteCharges: true, unmaskAbortRound: 2);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.False(result.Passed);
        Assert.Equal(0, result.CrossCheckMismatches);
        Assert.StartsWith("FAILED: the federation's site-level ledger does not cover 2 site-level charges of the sites.", result.Verdict, StringComparison.Ordinal);
        string problem = Assert.Single(result.Problems);
        Assert.StartsWith("The federation's site-level ledger does not cover 2 site-level charges of the sites, so the site-level ε the aggregator reports understates what was spent: round 2: h1 charged site-level ρ 0.1 (h1 audit.jsonl line", problem, StringComparison.Ordinal);
        Assert.Contains("for its masked input the aggregator received (aggregator audit.jsonl line", problem, StringComparison.Ordinal);
        Assert.Contains("but the aggregator logged no site-level charge (privacy.spent) for round 2", problem, StringComparison.Ordinal);
        Assert.DoesNotContain("round 1:", problem, StringComparison.Ordinal);
        Assert.DoesNotContain("round 3:", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_FederationChargedTheAbortedRoundAsTheSitesDid_Passes()
    {
        using var fed = new Federation();
        fed.Run(rounds: 3, siteCharges: true, unmaskAbortRound: 2, federationChargesAbort: true);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
    }

    /// <summary>Every site-level ε logged is the privacy ledger's conversion of the ρ logged so far: nothing to say.</summary>
    [Fact]
    public void Create_SiteLevelEpsilonOfTheLoggedRho_Passes()
    {
        using var fed = new Federation();
        fed.Run(rounds: 3, siteCharges: true, unmaskAbortRound: 2, federationChargesAbort: true);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        Assert.DoesNotContain(AuditReport.Create(fed.Directories).Html, "understates", StringComparison.Ordinal);
    }

    /// <summary>
    /// The aggregator charges the ρ the sites charged, but logs half the site-level ε they imply: only ρ was checked, so
    /// the federation's ε could understate what was spent (review of session 59).
    /// </summary>
    [Fact]
    public void Create_FederationLogsLessSiteLevelEpsilonThanItsRho_Fails()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2, siteCharges: true, federationEpsilonScale: 0.5);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.False(result.Passed, "the audit passed although the aggregator's logged site-level ε is half what its ρ gives");
        string expected = string.Create(CultureInfo.InvariantCulture,
            $"Round 1: the federation (aggregator) logged site-level ε {0.5 * TestLog.SiteEpsilon(0.1):G6} at δ 1E-05 (aggregator audit.jsonl line ");
        Assert.Contains(result.Problems, p => p.StartsWith(expected, StringComparison.Ordinal)
            && p.EndsWith(string.Create(CultureInfo.InvariantCulture, $"but the ρ of the 1 site-level charge it logged up to that line (ρ 0.1 in all) is ε {TestLog.SiteEpsilon(0.1):G6} at that δ, as the privacy ledger converts it: the logged ε understates what was spent."), StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.StartsWith("Round 2: the federation (aggregator) logged site-level ε", StringComparison.Ordinal));
        Assert.DoesNotContain(result.Problems, p => p.Contains("site h1 logged", StringComparison.Ordinal));
    }

    /// <summary>A site's own site-level ε below what the ρ it logged gives is named as the site's.</summary>
    [Fact]
    public void Create_SiteLogsLessSiteLevelEpsilonThanItsRho_Fails()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1, siteCharges: true, h2EpsilonScale: 0.9);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.False(result.Passed, "the audit passed although h2's logged site-level ε is 0.9 of what its ρ gives");
        string problem = Assert.Single(result.Problems);
        Assert.StartsWith(string.Create(CultureInfo.InvariantCulture, $"Round 1: site h2 logged site-level ε {0.9 * TestLog.SiteEpsilon(0.1):G6} at δ 1E-05 (h2 audit.jsonl line "), problem, StringComparison.Ordinal);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"is ε {TestLog.SiteEpsilon(0.1):G6} at that δ"), problem, StringComparison.Ordinal);
    }

    /// <summary>
    /// The aggregator charges each round ρ 0.01 while the sites charged 0.1, and logs a second site-level charge of the
    /// round without a ρ or with "NaN" (a string LogView.Number parses): that line must not stand in for an unbounded
    /// charge that covers the sites' (review of session 58).
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("NaN")]
    public void Create_UnderchargeBesideAChargeWithoutAFiniteRho_Fails(string? rho)
    {
        using var fed = new Federation();
        fed.Run(rounds: 1, siteCharges: true, federationRho: 0.01, extraCharge: (f, round) =>
        {
            f.Add("round", round).Add("guarantee", "site").Add("epsilon", 1000.0 * round).Add("delta", 1e-5).Add("budget", 1e12);
            if (rho is not null)
            {
                f.Add("rho", rho);
            }
        });

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.False(result.Passed, "the audit passed although the aggregator charged ρ 0.01 for sites' ρ 0.1");
        Assert.Contains(result.Problems, p => p.Contains("round 1: h1 charged site-level ρ 0.1", StringComparison.Ordinal) && p.Contains("but the aggregator charged the round only ρ 0.01 (aggregator audit.jsonl line", StringComparison.Ordinal));
        if (rho is not null)
        {
            Assert.Contains(result.Problems, p => p.StartsWith("aggregator audit.jsonl line 8: rho \"NaN\" is not a privacy charge", StringComparison.Ordinal));
        }
    }

    /// <summary>The aggregator's only charge of the round has no ρ, or "rho":"NaN" (the review's log): it covers nothing.</summary>
    [Theory]
    [InlineData(null)]
    [InlineData("NaN")]
    public void Create_FederationChargeWithoutAFiniteRho_DoesNotCoverTheSitesCharges(string? rho)
    {
        using var fed = new Federation();
        fed.Run(rounds: 1, siteCharges: true, federationRho: null, federationRhoText: rho);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        Assert.False(result.Passed, "the audit passed although the aggregator's only charge of the round states no finite ρ");
        Assert.Contains(result.Problems, p => p.Contains("but no site-level charge the aggregator logged for round 1 states a finite ρ (aggregator audit.jsonl line 7)", StringComparison.Ordinal));
    }

    [Fact]
    public void Create_SiteLogMissing_FlagsAggregatorRecord()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1);

        AuditReportResult result = AuditReport.Create([fed.Directories[0], fed.Directories[1]]);

        Assert.Equal(1, result.CrossCheckMismatches);
        Assert.Contains("MISMATCH: no log for site h2 was given", result.Html, StringComparison.Ordinal);
        Assert.Contains("No log of h2 was given, although a cohort names it.", result.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_HostileText_EscapesHtml()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1, refusalReason: "<script>alert(1)</script>");
        string output = Path.Combine(fed.Root, "out", "report.html");

        AuditReportResult result = AuditReport.Write(fed.Directories, output);

        string html = File.ReadAllText(output);
        Assert.Equal(result.Html, html);
        Assert.DoesNotContain("<script>", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_NoDirectory_Throws()
    {
        ArgumentException ex = Assert.Throws<ArgumentException>(() => AuditReport.Create([]));
        Assert.Contains("At least one log directory", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>An aggregator and two agents (h1, h2) logging rounds with the real event vocabulary.</summary>
    [Fact]
    public void Create_WithPrivacyAuditResult_ShowsArmsBesideTheLedgersEpsilonAndFlagsABoundAboveTheClaim()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2);
        string auditJson = Path.Combine(fed.Root, "privacy-audit.json");
        File.WriteAllText(auditJson, """
            {"kind":"securefed-privacy-audit","data":"ncbi-disease: 3 sites","arms":[
              {"arm":"federated (secure aggregation)","epsilon":null,"epsilon_spent":null,"exposure_mean":7.5,"mia_auc":0.61,"mia_tpr_at_1pct_fpr":0.04,"empirical_epsilon_lower_bound":1.25,"empirical_epsilon_lower_bound_natural":0.2,
               "group_audit":{"group_size":100,"epsilon_lower_bound":1.9,"claimed_group_epsilon":null,"claim_vacuous":false}},
              {"arm":"federated + DP-SGD ε=3","epsilon":3,"epsilon_spent":2.99,"exposure_mean":1.1,"mia_auc":0.5,"mia_tpr_at_1pct_fpr":0.01,"empirical_epsilon_lower_bound":3.5,"empirical_epsilon_lower_bound_natural":0,
               "group_audit":{"group_size":100,"epsilon_lower_bound":0,"claimed_group_epsilon":null,"claim_vacuous":true}}]}
            """);

        string html = AuditReport.Create(fed.Directories, auditJson).Html;

        Assert.Contains("<h2 id=\"privacy-audit-heading\">Empirical privacy audit</h2>", html, StringComparison.Ordinal);
        Assert.Contains("Highest patient-level ε in these logs: <b>1.6</b>", html, StringComparison.Ordinal);
        Assert.Contains("<tr><td>federated (secure aggregation)</td><td>no DP</td><td>1.25</td><td>0.2</td><td>7.5</td><td>0.61</td><td>0.04</td><td>r = 100: 1.9 (no DP)</td></tr>", html, StringComparison.Ordinal);
        // A lower bound above the accountant's ε (3.5 > 2.99) is a bug: the row is marked.
        Assert.Contains("<tr class=\"bad\"><td>federated + DP-SGD ε=3</td><td>2.99</td><td>3.5</td>", html, StringComparison.Ordinal);
        Assert.Contains("<td>r = 100: 0 (claim vacuous)</td>", html, StringComparison.Ordinal);
        Assert.True(html.IndexOf("id=\"participation\"", StringComparison.Ordinal) < html.IndexOf("id=\"privacy-audit\"", StringComparison.Ordinal));
        Assert.True(html.IndexOf("id=\"privacy-audit\"", StringComparison.Ordinal) < html.IndexOf("id=\"details\"", StringComparison.Ordinal));
    }

    [Fact]
    public void Create_PrivacyAuditFileWithoutArms_ThrowsNamingTheFile()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1);
        string bad = Path.Combine(fed.Root, "not-an-audit.json");
        File.WriteAllText(bad, """{"pooled_f1":0.7}""");

        var ex = Assert.Throws<InvalidDataException>(() => AuditReport.Create(fed.Directories, bad));

        Assert.Contains("not-an-audit.json", ex.Message, StringComparison.Ordinal);
        Assert.Contains("\"arms\"", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>The results.json of 'securefed experiment' also has an "arms" list with "arm" and "epsilon": refused by its kind.</summary>
    [Fact]
    public void Create_ExperimentResultsAsPrivacyAudit_ThrowsNamingTheFileAndTheExpectedKind()
    {
        using var fed = new Federation();
        fed.Run(rounds: 1);
        string results = Path.Combine(fed.Root, "results.json");
        File.WriteAllText(results, """
            {"configuration":{"sites":3},"data":"ncbi-disease: 3 sites","sites":[{"name":"site-1","training_sentences":10}],
             "summary":{"pooled_f1":0.7},
             "arms":[{"arm":"federated + DP-SGD ε=8","kind":"federated_dp","epsilon":8,"f1_mean":0.5}],
             "runs":[{"arm":"federated + DP-SGD ε=8","kind":"federated_dp","seed":1,"epsilon":8,"epsilon_spent":7.9,"test_f1":0.5}],
             "machine":{}}
            """);

        var ex = Assert.Throws<InvalidDataException>(() => AuditReport.Create(fed.Directories, results));

        Assert.Contains(results, ex.Message, StringComparison.Ordinal);
        Assert.Contains("results.json of 'securefed experiment'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("\"kind\": \"securefed-privacy-audit\"", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckPrivacyAudit_OtherKind_ThrowsNamingTheKind()
    {
        string file = Path.Combine(Path.GetTempPath(), "securefed-audit-kind-" + Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(file, """{"kind":"securefed-ledger","arms":[]}""");
        try
        {
            var ex = Assert.Throws<InvalidDataException>(() => AuditReport.CheckPrivacyAudit(file));

            Assert.Contains(file, ex.Message, StringComparison.Ordinal);
            Assert.Contains("\"securefed-ledger\"", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>The one-line summary 'securefed privacy audit --json' prints (no kind, but its charts) is still read.</summary>
    [Fact]
    public void CheckPrivacyAudit_JsonSummaryLine_Accepted()
    {
        string file = Path.Combine(Path.GetTempPath(), "securefed-audit-line-" + Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(file, """{"arms":[{"arm":"federated (secure aggregation)","epsilon":null,"mia_auc":0.6}],"results":"out/privacy-audit.json","charts":["a.png","b.png"]}""");
        try
        {
            AuditReport.CheckPrivacyAudit(file);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Create_ManyRounds_CrossCheckPairsEveryInputWithItsCounterpart()
    {
        using var fed = new Federation();
        fed.Run(rounds: 150, tamperedSite: "h2", budget: 1000);

        AuditReportResult result = AuditReport.Create(fed.Directories);

        // h1's 150 inputs match both ways; each of h2's 150 differs on both sides.
        Assert.Equal(300, result.CrossCheckMismatches);
        Assert.Contains("300 of 600 masked-input record(s) match; 300 mismatch(es).", result.Html, StringComparison.Ordinal);
        Assert.StartsWith("300 masked-input cross-check discrepancies: round 1, aggregator received (aggregator audit.jsonl line 4): digest differs: h2 logged sending ", Assert.Single(result.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void Create_EveryLogPinned_PassesWithoutTheUnpinnedCaveat()
    {
        using var fed = new Federation();
        fed.Run(rounds: 2);
        using Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]);
        string?[] pins = [.. new[] { "aggregator", "h1", "h2" }.Select(n => NoteVerifierKey.FromEd25519("securefed.test/" + n, key.PublicKey).ToString())];

        AuditReportResult pinned = AuditReport.Create(fed.Directories, verifierKeys: pins);
        AuditReportResult partly = AuditReport.Create(fed.Directories, verifierKeys: [pins[0], null, pins[2]]);

        Assert.True(pinned.Passed, string.Join("\n", pinned.Problems));
        Assert.EndsWith("every site within its patient-level ε budget.", pinned.Verdict, StringComparison.Ordinal);
        Assert.EndsWith(" Keys not pinned for h1: checked against their own verifier.key.", partly.Verdict, StringComparison.Ordinal);
    }

    private sealed class Federation : IDisposable
    {
        private static readonly string[] Sites = ["h1", "h2"];

        public Federation()
        {
            Root = Path.Combine(Path.GetTempPath(), "securefed-audit-tests", Guid.NewGuid().ToString("N"));
            Directories = [Path.Combine(Root, "aggregator"), Path.Combine(Root, "h1"), Path.Combine(Root, "h2")];
        }

        public string Root { get; }

        public IReadOnlyList<string> Directories { get; }

        /// <summary>
        /// Logs <paramref name="rounds"/> rounds; each site spends patient-level ε 0.8 per round against a budget of 8
        /// (<paramref name="overBudgetSite"/> logs 9.5 in round 2). <paramref name="abortRound"/>: h2 drops at the masked
        /// input and the round aborts. <paramref name="openRounds"/> are opened and never ended (or aborted together
        /// as after a restart when <paramref name="restartAbort"/>). <paramref name="cutShortUpload"/>: in
        /// <paramref name="abortRound"/> h2 logs sending its masked input (as an agent does before its upload) but the
        /// aggregator never receives it; with <paramref name="wentOnAfterUpload"/> h2 then logs its consistency message.
        /// <paramref name="receiptDeletedSite"/>: in round 1 the aggregator uses that site's input (the aggregate names it)
        /// but logs no receipt. <paramref name="siteCharges"/>: each site also logs a site-level charge (ρ 0.1) after its
        /// input when the round reached unmasking, and the aggregator charges the same ρ for each completed round;
        /// <paramref name="unmaskAbortRound"/> aborts after the unmasking request, charged by the aggregator only when
        /// <paramref name="federationChargesAbort"/>. <paramref name="federationRho"/>: the ρ of the aggregator's charge of a
        /// completed round (none when null), or <paramref name="federationRhoText"/> written as a string;
        /// <paramref name="extraCharge"/> writes a second privacy.spent after it. Each site-level charge states the ε of the
        /// ρ its log charged so far (the aggregator's times <paramref name="federationEpsilonScale"/>, h2's times
        /// <paramref name="h2EpsilonScale"/>), as a ledger does.
        /// </summary>
        public void Run(int rounds, string? tamperedSite = null, int? abortRound = null, string? overBudgetSite = null,
                        bool logBudget = true, double budget = 8, int[]? openRounds = null, bool restartAbort = false, string refusalReason = "budget exhausted",
                        bool federatedEvaluation = false, bool cutShortUpload = false, bool wentOnAfterUpload = false, string? receiptDeletedSite = null,
                        bool siteCharges = false, int? unmaskAbortRound = null, bool federationChargesAbort = false,
                        double? federationRho = 0.1, Action<AuditFields, int>? extraCharge = null, string? federationRhoText = null,
                        double federationEpsilonScale = 1, double h2EpsilonScale = 1)
        {
            double federationRhoSpent = 0;
            using Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]);
            using AuditLog aggregator = AuditLog.Open(Directories[0], "aggregator", key, "securefed.test/aggregator");
            using AuditLog h1 = AuditLog.Open(Directories[1], "h1", key, "securefed.test/h1");
            using AuditLog h2 = AuditLog.Open(Directories[2], "h2", key, "securefed.test/h2");
            AuditLog[] agents = [h1, h2];
            for (int round = 1; round <= rounds; round++)
            {
                Open(aggregator, round);
                bool abort = round == abortRound;
                for (int i = 0; i < agents.Length; i++)
                {
                    string site = Sites[i];
                    agents[i].Append(AuditEvents.RoundJoined, f => f.Add("round", round));
                    if (abort && site == "h2" && !cutShortUpload)
                    {
                        continue;
                    }

                    byte[] masked = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"masked input of {site} in round {round}"));
                    byte[] received = site == tamperedSite ? SHA256.HashData(masked) : masked;
                    double epsilon = site == overBudgetSite && round == 2 ? 9.5 : 0.8 * round;
                    agents[i].Append(AuditEvents.MessageSent, f => f.Add("round", round).Add("message_type", AuditEvents.MaskedInputMessageType).Add("bytes", 4000).AddDigest("sha256", masked));
                    agents[i].Append(AuditEvents.PrivacyLedger, f =>
                    {
                        f.Add("round", round).Add("guarantee", "record").Add("epsilon", epsilon).Add("delta", 1e-5);
                        if (logBudget)
                        {
                            f.Add("budget", budget);
                        }
                    });
                    if (abort && site == "h2")
                    {
                        if (wentOnAfterUpload)
                        {
                            agents[i].Append(AuditEvents.MessageSent, f => f.Add("round", round).Add("message_type", "consistency").Add("bytes", 127).AddDigest("sha256", new byte[32]));
                        }

                        continue; // the upload was cut short: the aggregator never got it
                    }

                    if (site != receiptDeletedSite || round != 1)
                    {
                        aggregator.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", round).Add("site", site).Add("bytes", 4000).AddDigest("sha256", received));
                    }
                }

                if (siteCharges && !abort)
                {
                    aggregator.Append(AuditEvents.UnmaskRequested, f => f.Add("round", round).Add("survivors", Sites).Add("dropped", Array.Empty<string>()));
                    foreach (AuditLog agent in agents)
                    {
                        agent.Append(AuditEvents.PrivacyLedger, f => f.Add("round", round).Add("guarantee", "site").Add("epsilon", (agent == h2 ? h2EpsilonScale : 1) * TestLog.SiteEpsilon(0.1 * round)).Add("delta", 1e-5).Add("budget", 10).Add("rho", 0.1));
                    }
                }

                if (abort)
                {
                    aggregator.Append(AuditEvents.Dropout, f => f.Add("round", round).Add("stage", "masked_input").Add("sites", ["h2"]));
                    aggregator.Append(AuditEvents.RoundAborted, f => f.Add("round", round).Add("stage", "masked_input").Add("reason", "fewer than t masked inputs"));
                }
                else if (round == unmaskAbortRound)
                {
                    if (federationChargesAbort)
                    {
                        federationRhoSpent += 0.1;
                        aggregator.Append(AuditEvents.PrivacySpent, f => f.Add("round", round).Add("guarantee", "site").Add("rho", 0.1).Add("epsilon", federationEpsilonScale * TestLog.SiteEpsilon(federationRhoSpent)).Add("delta", 1e-5).Add("budget", 1e12)
                            .Add("note", "round aborted after its unmasking request: charged conservatively, the sum may have been unmasked"));
                    }

                    aggregator.Append(AuditEvents.RoundAborted, f => f.Add("round", round).Add("stage", "unmasking").Add("reason", "the aggregator is shutting down"));
                }
                else
                {
                    aggregator.Append(AuditEvents.AggregateProduced, f => f.Add("round", round).Add("model_version", round).AddDigest("sha256", new byte[32]).Add("participants", Sites));
                    if (federatedEvaluation && round == 1)
                    {
                        // As the aggregator writes it: 30 TP, 10 FP, 20 FN summed over both sites.
                        aggregator.Append(AuditEvents.FederatedEvaluation, f => f.Add("round", round).Add("model_version", round - 1).Add("evaluators", 2)
                            .Add("tp", 30).Add("fp", 10).Add("fn", 20).Add("f1", 0.6666666666666666).Add("precision", 0.75).Add("recall", 0.6)
                            .AddObject("per_type", t => t.AddObject("Disease", d => d.Add("tp", 20).Add("fp", 5).Add("fn", 5).Add("f1", 0.8)).AddObject("Drug", d => d.Add("tp", 10).Add("fp", 5).Add("fn", 15).Add("f1", 0.5))));
                    }
                    else if (federatedEvaluation)
                    {
                        aggregator.Append(AuditEvents.FederatedEvaluation, f => f.Add("round", round).Add("model_version", round - 1).Add("withheld", "only 1 of 2 contributors scored the model; at least 2 are needed before the federation's score is published"));
                    }

                    bool priced = siteCharges && federationRhoText is null && federationRho is not null;
                    federationRhoSpent += priced ? federationRho!.Value : 0;
                    double federationEpsilon = priced ? federationEpsilonScale * TestLog.SiteEpsilon(federationRhoSpent) : 1000.0 * round;
                    aggregator.Append(AuditEvents.PrivacySpent, f =>
                    {
                        f.Add("round", round).Add("guarantee", "site").Add("epsilon", federationEpsilon).Add("delta", 1e-5).Add("budget", 1e12);
                        if (siteCharges && federationRhoText is not null)
                        {
                            f.Add("rho", federationRhoText);
                        }
                        else if (siteCharges && federationRho is { } rho)
                        {
                            f.Add("rho", rho);
                        }
                    });
                    if (extraCharge is not null)
                    {
                        aggregator.Append(AuditEvents.PrivacySpent, f => extraCharge(f, round));
                    }

                    aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", round));
                }

                aggregator.Checkpoint();
                h1.Checkpoint();
                h2.Checkpoint();
            }

            h1.Append(AuditEvents.Refusal, f => f.Add("round", rounds + 1).Add("reason", refusalReason));
            foreach (int round in openRounds ?? [])
            {
                Open(aggregator, round);
            }

            if (restartAbort)
            {
                aggregator.Append(AuditEvents.RoundAborted, f => f.Add("rounds", (openRounds ?? []).Length).Add("stage", "unknown").Add("reason", "aggregator restarted while the round was open"));
            }
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

        private static void Open(AuditLog aggregator, int round) =>
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", round).Add("session", "s" + round).Add("cohort", Sites).Add("threshold", 2)
                .Add("bit_width", 32).Add("vector_length", 1000).Add("model_version", round - 1)
                .AddObject("dp", d => d.Add("dp_sgd_noise_multiplier", 1.1).Add("l2_clip", 1.0)));
    }
}
