using System.CommandLine;
using SecureFed.Experiments;

namespace SecureFed.Cli.Commands;

/// <summary><c>securefed experiment</c>: parses the options and hands them to <see cref="ExperimentRunner"/>.</summary>
internal static class ExperimentCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "CoNLL corpus folder (train.tsv, dev.tsv, test.tsv) for --split iid or skewed." };
        var corpora = new Option<string?>("--corpora") { Description = "Comma-separated corpus folders for --split by-corpus, one per site." };
        var sites = new Option<int?>("--sites") { Description = "Number of sites (default 3; by-corpus: the number of corpora)." };
        var split = new Option<string>("--split") { Description = "iid, skewed or by-corpus.", DefaultValueFactory = _ => "iid" };
        var skew = new Option<string?>("--skew") { Description = "Shares of the skewed split, e.g. 0.6,0.3,0.1 (the default for 3 sites)." };
        var epsilon = new Option<string>("--epsilon") { Description = "Patient-level ε of the DP arms, comma-separated, each at least 0.01 (below it the DP-SGD noise drowns every gradient; δ is set apart at 1e-5); shown with two decimals from 1 up and three significant digits below 1; 'none' runs no DP arm.", DefaultValueFactory = _ => "1,3,8" };
        var seeds = new Option<int>("--seeds") { Description = "Seeds (headline numbers are mean and spread over them).", DefaultValueFactory = _ => 2 };
        var firstSeed = new Option<int>("--first-seed") { Description = "First seed, to run seeds in separate processes (seeds first … first + --seeds − 1).", DefaultValueFactory = _ => 1 };
        var config = new Option<string>("--config") { Description = "Model: tiny, tiny-crf (tiny with a CRF head: better under DP), tiny-encoder and tiny-crf-encoder (the same fed the frozen public encoder all-MiniLM-L6-v2 too: better under DP without a public corpus), tiny-crf-encoder-mean (fed the mean of its six layers instead of the last: better still), default, or a JSON file written by TaggerConfig.ToJson.", DefaultValueFactory = _ => "tiny" };
        var output = new Option<string>("--out") { Description = "Output folder for results.json and f1-per-round.png (must not exist or be empty: earlier results are never overwritten).", DefaultValueFactory = _ => "experiment-out" };
        var json = new Option<bool>("--json") { Description = "Print the summary as one JSON object on the last line." };
        var rounds = new Option<int>("--rounds") { Description = "Federated rounds (centralized arms: the same number of chunks of local epochs).", DefaultValueFactory = _ => 10 };
        var maxSentences = new Option<int>("--max-sentences") { Description = "Cap on training sentences per corpus (0 = all), for quick runs.", DefaultValueFactory = _ => 0 };
        var maxEval = new Option<int>("--max-eval-sentences") { Description = "Cap on dev and test sentences per corpus (0 = all).", DefaultValueFactory = _ => 0 };
        var optimizer = new Option<string>("--optimizer") { Description = "Local optimiser without DP: adam or sgd.", DefaultValueFactory = _ => "adam" };
        var lrDecay = new Option<double>("--lr-decay") { Description = "Round r trains at lr / (1 + decay·(r − 1)); 0 = constant.", DefaultValueFactory = _ => 0.0 };
        var batchSize = new Option<int>("--batch-size") { Description = "Batch size without DP.", DefaultValueFactory = _ => 32 };
        var weightDecay = new Option<double>("--dp-weight-decay") { Description = "Decoupled weight decay λ of the DP-SGD steps: each step scales the weights by 1 − lr·λ, so noise no example pulls back stays bounded (post-processing, no privacy cost). 0 = off.", DefaultValueFactory = _ => 0.0 };
        var freeze = new Option<bool>("--dp-freeze-embeddings") { Description = "DP-SGD keeps the embedding tables fixed (the initial or warm-start ones): noise only on the encoder and head." };
        var precondition = new Option<bool>("--dp-precondition") { Description = "DP-SGD preconditions each example's gradient with Adam's second moments measured on the public --warm-start corpus (AdaDPS); no privacy cost." };
        var preconditionFloor = new Option<double>("--dp-precondition-floor") { Description = "Floor of the preconditioner's gradient RMS, as a fraction of its median.", DefaultValueFactory = _ => 0.1 };
        var preconditionAfter = new Option<bool>("--dp-precondition-after-noise") { Description = "With --dp-precondition: scale the privatised (clipped, noised) gradient instead of each example's gradient before clipping." };
        var preconditionSplit = new Option<double>("--dp-precondition-split") { Description = "With --dp-precondition: each example's gradient is scaled by the factors to this power α before clipping, the noisy gradient by the power 1 − α (1 = all before clipping, 0 = --dp-precondition-after-noise).", DefaultValueFactory = _ => 1 };
        var accountant = new Option<string>("--accountant") { Description = "How σ is calibrated to ε: rdp (the Rényi-DP accountant of the product's ledger) or pld (privacy loss distributions, tighter: less noise for the same ε).", DefaultValueFactory = _ => "rdp" };
        accountant.AcceptOnlyFromAmong("rdp", "pld");
        var dpNoise = new Option<string>("--dp-noise") { Description = "Patient-level DP-SGD noise: local (each site adds all of it; ε holds even if everyone else colludes) or distributed (split across the sites; needs --dp-steps 1; ε holds against the aggregator while secure aggregation holds, and the weaker collusion ε is reported).", DefaultValueFactory = _ => "local" };
        dpNoise.AcceptOnlyFromAmong("local", "distributed");
        var dpNoiseShares = new Option<int?>("--dp-noise-shares") { Description = "With --dp-noise distributed: k, the shares the noise is split into (each site adds σ/√k; the product's DpSgdNoiseShares, at most the round's threshold: 2 for 3 sites); default the number of sites." };
        var adaptiveClip = new Option<double>("--adaptive-clip") { Description = "Adaptive clipping (Andrew et al. 2021): the target fraction γ of sampled examples left unclipped, e.g. 0.5; C starts at --grad-clip and moves geometrically towards that norm quantile after every round, from a noised count; ε unchanged (the gradient noise is raised slightly). Needs --dp-steps 1. 0 = a fixed clip.", DefaultValueFactory = _ => 0 };
        var clipLr = new Option<double>("--clip-lr") { Description = "With --adaptive-clip: η_C of C ← C·exp(−η_C (b̃ − γ)).", DefaultValueFactory = _ => ExperimentOptions.DefaultClipLearningRate };
        var clipCountNoise = new Option<double?>("--clip-count-noise") { Description = "With --adaptive-clip: σ_b, the Gaussian noise on the unclipped count (in the sum over the sites with --dp-noise distributed); must exceed σ/2. Default: the expected batch size / 20." };
        var serverEma = new Option<double>("--server-ema") { Description = "Report an exponential moving average of the global models with this decay (e.g. 0.9; post-processing, no privacy cost); 0 = off. The decay at round r is min(decay, (1 + r) / (10 + r)): 0.95 is reached at round 170, 0.98 at 440 (--server-average-from for long windows).", DefaultValueFactory = _ => 0 };
        var serverKalman = new Option<double>("--server-kalman") { Description = "κ of DiSK's simplified Kalman filter on the averaged update (Zhang et al., 2024): the sites train from x_t + ((1 − κ)/κ)(x_t − x_t−1) and the server's update rule gets (1 − κ)·(the last filtered update) + κ·(this round's); post-processing, no privacy cost; 1 = off.", DefaultValueFactory = _ => 1 };
        var serverAverageFrom = new Option<int>("--server-average-from") { Description = "Report the uniform mean of the global models after this round and every later one (Polyak-Ruppert tail averaging; post-processing, no privacy cost); 0 = off; not with --server-ema." };
        var publicMix = new Option<double>("--public-mix") { Description = "DP arms: each round the server also takes one noiseless step of the sites' kind on the public --warm-start corpus (same preconditioner, clip, lr; a batch the size of one site's) and adds it, times this weight, to the averaged update before its rule; the weight decays linearly to 0 at --public-mix-until. Public data only: no privacy cost. 0 = off." };
        var publicMixUntil = new Option<int>("--public-mix-until") { Description = "Last round of the --public-mix steps (0 = --rounds)." };
        var serverAverageSweep = new Option<bool>("--server-average-sweep") { Description = "After each federated arm, also score on dev and test the last global model, tail averages over the last 10, 25, 50, 100 and rounds/2 rounds and bias-corrected moving averages with decays 0.9-0.99 of the same run (keeps every round's model in memory; choose on dev)." };
        var preconditionPerTensor = new Option<bool>("--dp-precondition-per-tensor") { Description = "With --dp-precondition: one factor per weight tensor (layer-wise) instead of per coordinate." };
        var subspace = new Option<int>("--dp-subspace") { Description = "Projected DP-SGD: clip and noise each example's gradient in the top-k principal directions of public per-example gradients (the --warm-start corpus); the noise shrinks with k, ε does not change. 0 = off." };
        var subspaceSentences = new Option<int>("--dp-subspace-sentences") { Description = "Public sentences whose gradients span the --dp-subspace.", DefaultValueFactory = _ => 1000 };
        var subspaceRefresh = new Option<int>("--dp-subspace-refresh") { Description = "Recompute the --dp-subspace at the current global model every this many rounds (0 = only at the initial model)." };
        var serverLr = new Option<double>("--server-lr") { Description = "Server learning rate: the global model moves by this times the weighted mean of the sites' deltas.", DefaultValueFactory = _ => 1.0 };
        var serverOptimizer = new Option<string>("--server-optimizer") { Description = "The aggregator's update rule on the averaged delta: avg (FedAvg), momentum (FedAvgM) or adam (FedAdam); post-processing of the sum, no privacy cost.", DefaultValueFactory = _ => "avg" };
        var serverBeta1 = new Option<double>("--server-beta1") { Description = "Server momentum (momentum) or Adam's β1 (adam).", DefaultValueFactory = _ => 0.9 };
        var serverBeta2 = new Option<double>("--server-beta2") { Description = "Server Adam's β2.", DefaultValueFactory = _ => 0.99 };
        var serverTau = new Option<double>("--server-tau") { Description = "Server Adam's adaptivity τ.", DefaultValueFactory = _ => 1e-3 };
        var serverNoiseCorrection = new Option<bool>("--server-noise-correction") { Description = "With --server-optimizer adam on DP arms: subtract the DP noise's known variance from Adam's second moment (DP-AdamBC); computed from σ, C, q, the sites' sizes and --dp-lr." };
        var serverNoiseFloor = new Option<double>("--server-noise-floor") { Description = "With --server-noise-correction: the floor of the corrected second moment, as a multiple of the noise variance.", DefaultValueFactory = _ => 1.0 };
        var updateClip = new Option<double>("--update-clip") { Description = "Site-level L2 clip S of a site's model delta.", DefaultValueFactory = _ => 1000.0 };
        var siteNoise = new Option<double>("--site-noise") { Description = "Site-level distributed-DP noise multiplier z; > 0 adds the arm DP-SGD (largest ε) + site DP.", DefaultValueFactory = _ => 0.0 };
        var recipe = new TrainingRecipeOptions();
        var dpOnly = new Option<bool>("--dp-only") { Description = "Run only the DP arms (recipe search)." };
        var pooledOnly = new Option<bool>("--pooled-only") { Description = "Run only the pooled (centralized) arm, e.g. the upper bound at the epochs of a longer federated-only run; needs --epsilon none." };
        var federatedOnly = new Option<bool>("--federated-only") { Description = "Skip the centralized arms (each site alone, pooled): recipe search for the federated ones." };
        var noPartial = new Option<bool>("--no-partial-annotation") { Description = "By-corpus split: train a type a corpus does not annotate as O there (the naive way) instead of as possibly any unannotated type." };
        var distillText = new Option<string?>("--distill-text") { Description = "Comma-separated public corpus folders (train/dev/test.tsv; tokens only, labels ignored) that each federated arm's final model (the teacher) tags with its Viterbi labels; a student initialised from the teacher is then trained on those pseudo-labels (self-training; post-processing, no privacy cost) and reported next to the teacher; never the evaluated corpus." };
        var distillEpochs = new Option<int>("--distill-epochs") { Description = "Epochs of the --distill-text student (the one with the best dev F1 is reported).", DefaultValueFactory = _ => 3 };
        var distillLr = new Option<double>("--distill-lr") { Description = "Adam learning rate of the --distill-text student (batches of --batch-size).", DefaultValueFactory = _ => 0.003 };
        var distillTeacher = new Option<string?>("--distill-teacher") { Description = "A model folder an earlier run wrote (<out>/models/seed1-dp-eps8, say): train no arm, self-train that model on --distill-text and report it next to its student (student variants without training the teacher again; use the seed it was trained with)." };
        var threads = new Option<int>("--threads") { Description = "Torch threads (0 = auto).", DefaultValueFactory = _ => 0 };

        var command = new Command("experiment", "What federation buys a hospital: each site alone vs pooled vs federated (real secure aggregation) vs federated with DP-SGD, on real corpora.");
        foreach (Option o in new Option[] { data, corpora, sites, split, skew, epsilon, seeds, firstSeed, config, output, json, rounds, maxSentences, maxEval, optimizer, lrDecay, batchSize, weightDecay, freeze, precondition, preconditionFloor, preconditionAfter, preconditionSplit, preconditionPerTensor, subspace, subspaceSentences, subspaceRefresh, accountant, dpNoise, dpNoiseShares, adaptiveClip, clipLr, clipCountNoise, serverEma, serverKalman, serverAverageFrom, serverAverageSweep, publicMix, publicMixUntil, serverLr, serverOptimizer, serverBeta1, serverBeta2, serverTau, serverNoiseCorrection, serverNoiseFloor, updateClip, siteNoise, dpOnly, federatedOnly, pooledOnly, noPartial, distillText, distillEpochs, distillLr, distillTeacher, threads }.Concat(recipe.All))
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) =>
        {
            TextWriter stdout = parse.InvocationConfiguration.Output;
            TextWriter stderr = parse.InvocationConfiguration.Error ?? Console.Error;
            bool asJson = parse.GetValue(json);
            ExperimentSplit splitKind = parse.GetValue(split) switch
            {
                "iid" => ExperimentSplit.Iid,
                "skewed" => ExperimentSplit.Skewed,
                "by-corpus" => ExperimentSplit.ByCorpus,
                var other => throw new UsageException($"--split must be iid, skewed or by-corpus, not '{other}'"),
            };
            if (parse.GetValue(skew) is string givenSkew && splitKind != ExperimentSplit.Skewed)
            {
                // It was ignored: the run went ahead with an even split the user did not ask for.
                throw new UsageException($"--skew {givenSkew} sets the shares of --split skewed, but --split is {parse.GetValue(split)}; give --split skewed with it, or leave --skew out.");
            }

            string[] corpusList = parse.GetValue(corpora) is string c ? [.. c.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)] : [];
            if (corpusList.Select((path, i) => (path, i)).FirstOrDefault(p => corpusList.Take(p.i).Any(earlier => OutputPaths.SamePath(earlier, p.path))) is { path: not null } twice)
            {
                throw new UsageException($"--corpora names {twice.path} more than once; each site of the by-corpus split needs a corpus of its own (the same corpus twice would be one hospital counted as two).");
            }

            // A missing folder, or a file, is a usage error naming the option (it was exit 1 saying train.tsv was missing).
            string? dataDirectory = parse.GetValue(data) is string d ? InputPaths.RequireFolder(d, "--data", InputPaths.Corpus) : null;
            foreach (string corpus in corpusList)
            {
                InputPaths.RequireFolder(corpus, "--corpora", InputPaths.Corpus);
            }

            ExperimentOptions options = recipe.Apply(parse, new ExperimentOptions
            {
                DataDirectory = dataDirectory,
                Corpora = corpusList,
                Sites = parse.GetValue(sites) ?? (splitKind == ExperimentSplit.ByCorpus ? corpusList.Length : 3),
                Split = splitKind,
                SkewShares = parse.GetValue(skew) is string s ? NumberLists.Parse(s, "--skew") : [],
                Epsilons = parse.GetValue(epsilon) is "none" or "" ? [] : NumberLists.Parse(parse.GetValue(epsilon)!, "--epsilon"),
                Seeds = parse.GetValue(seeds),
                FirstSeed = parse.GetValue(firstSeed),
                ConfigName = parse.GetValue(config)!,
                OutputDirectory = parse.GetValue(output)!,
                Rounds = parse.GetValue(rounds),
                MaxTrainSentences = parse.GetValue(maxSentences),
                MaxEvalSentences = parse.GetValue(maxEval),
                Optimizer = TrainingRecipeOptions.Optimizer(parse.GetValue(optimizer)!, "--optimizer"),
                LearningRateDecay = parse.GetValue(lrDecay),
                BatchSize = parse.GetValue(batchSize),
                DpWeightDecay = parse.GetValue(weightDecay),
                DpFreezeEmbeddings = parse.GetValue(freeze),
                DpPrecondition = parse.GetValue(precondition),
                DpPreconditionFloor = parse.GetValue(preconditionFloor),
                DpPreconditionPerTensor = parse.GetValue(preconditionPerTensor),
                DpSubspace = parse.GetValue(subspace),
                DpSubspaceSentences = parse.GetValue(subspaceSentences),
                DpSubspaceRefresh = parse.GetValue(subspaceRefresh),
                DpDistributedNoise = parse.GetValue(dpNoise) == "distributed",
                DpNoiseShares = parse.GetValue(dpNoiseShares),
                AdaptiveClipQuantile = parse.GetValue(adaptiveClip),
                ClipLearningRate = parse.GetValue(clipLr),
                ClipCountNoise = parse.GetValue(clipCountNoise),
                PldAccounting = parse.GetValue(accountant) == "pld",
                ServerWeightAverage = parse.GetValue(serverEma),
                ServerKalman = parse.GetValue(serverKalman),
                ServerAverageFrom = parse.GetValue(serverAverageFrom),
                ServerAverageSweep = parse.GetValue(serverAverageSweep),
                PublicMix = parse.GetValue(publicMix),
                PublicMixUntil = parse.GetValue(publicMixUntil),
                DpPreconditionAfterNoise = parse.GetValue(preconditionAfter),
                DpPreconditionSplit = parse.GetValue(preconditionSplit),
                ServerLearningRate = parse.GetValue(serverLr),
                ServerOptimizerName = parse.GetValue(serverOptimizer)!,
                ServerBeta1 = parse.GetValue(serverBeta1),
                ServerBeta2 = parse.GetValue(serverBeta2),
                ServerTau = parse.GetValue(serverTau),
                ServerNoiseCorrection = parse.GetValue(serverNoiseCorrection),
                ServerNoiseFloor = parse.GetValue(serverNoiseFloor),
                UpdateClip = parse.GetValue(updateClip),
                SiteNoiseMultiplier = parse.GetValue(siteNoise),
                RunNonPrivateArms = !parse.GetValue(dpOnly),
                RunCentralizedArms = !parse.GetValue(federatedOnly),
                PooledOnly = parse.GetValue(pooledOnly),
                PartialAnnotation = !parse.GetValue(noPartial),
                DistillTextDirectories = parse.GetValue(distillText) is string distill ? [.. distill.Split(',', StringSplitOptions.TrimEntries)] : [],
                DistillEpochs = parse.GetValue(distillEpochs),
                DistillLearningRate = parse.GetValue(distillLr),
                DistillTeacherDirectory = parse.GetValue(distillTeacher),
                Threads = parse.GetValue(threads),
            });
            try
            {
                options.Validate();
            }
            catch (ArgumentException ex)
            {
                throw new UsageException(ex.Message);
            }

            OutputPaths.RequireNewFolder(options.OutputDirectory, "--out", "earlier results and models");
            OutputPaths.RequireWritableFolder(options.OutputDirectory, "--out"); // now, not when the first arm's model is saved

            // Progress goes to stderr so that stdout holds the table (and, with --json, ends with the JSON line).
            var runner = new ExperimentRunner(options, line => stderr.WriteLine(line));
            ExperimentReport report;
            try
            {
                report = runner.Run(ct);
            }
            catch (ArgumentException ex)
            {
                // e.g. an ε the accountant cannot reach with these steps: a clear error, not a crash.
                throw new InvalidOperationException(ex.Message, ex);
            }

            stdout.Write(ExperimentTable.Format(report));
            stdout.WriteLine($"results: {report.JsonPath}; chart: {report.ChartPath}");
            if (asJson)
            {
                stdout.WriteLine(ExperimentJson.SummaryLine(report));
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }
}
