using System.CommandLine;
using System.Globalization;
using SecureFed.Cli.Demo;
using SecureFed.Experiments;
using SecureFed.Privacy;
using SecureFed.Protocol;
using SecureFed.Tagger;
using Spectre.Console;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed demo</c>: the end-to-end federation on NCBI-disease (shipped in <c>data/ncbi-disease</c>), the embedded
/// synthetic clinical corpus (<c>--corpus synthetic</c>) or any CoNLL corpus (<c>--data</c>).
/// </summary>
internal static class DemoCommand
{
    /// <summary>Default training sentences per site from a real corpus: 0, every site keeps its whole share (DP-SGD needs the data: with a third of it the noise per step is three times larger).</summary>
    internal const int DefaultTrainPerSite = 0;

    public static Command Create()
    {
        var rounds = new Option<int>("--rounds") { Description = "Federated rounds to run (from a random model DP-SGD is limited by its steps: --rounds 30 --model tiny-crf scored 4-6 points more on NCBI-disease than the default 10 while DP-SGD kept dropout, in three times the time; docs/utility.md \"Session 16\"; without dropout, the default since session 20, 10 rounds reach as much). With one DP-SGD step per round (--patient-noise distributed or --steps-per-round 1) the default is as many rounds as 10 rounds' steps: 10 × 20 = 200, at most 500.", DefaultValueFactory = _ => DemoSettings.DefaultRounds };
        var sites = new Option<int>("--sites") { Description = "Hospitals (agents); the first three are site-de, site-fr, site-jp.", DefaultValueFactory = _ => 3 };
        var epsilon = new Option<double>("--epsilon") { Description = "Patient-level ε each site reaches after all rounds (DP-SGD noise is calibrated to it; δ = 1e-5); at least 0.01 (below it the noise drowns every gradient).", DefaultValueFactory = _ => 8.0 };
        var drop = new Option<string?>("--drop-site-at") { Description = "Make the last site go silent before this stage of round 2 (--drop-round) to watch dropout recovery: advertise, share, mask, consistency, unmask (mask, consistency and unmask need 3 sites or more)." };
        var dropRound = new Option<int>("--drop-round") { Description = "Round in which --drop-site-at applies.", DefaultValueFactory = _ => 2 };
        var output = new Option<string?>("--out") { Description = "Output folder (default: ./securefed-demo-<UTC time>); must not exist or be empty." };
        var corpus = new Option<string>("--corpus") { Description = "ncbi-disease (real PubMed abstracts with Disease mentions, shipped in data/ncbi-disease; the default) or synthetic (the embedded five-type clinical corpus).", DefaultValueFactory = _ => "ncbi-disease" };
        var data = new Option<string?>("--data") { Description = "Any CoNLL corpus folder (train.tsv, dev.tsv, test.tsv) split across the sites, instead of --corpus." };
        var trainPerSite = new Option<int>("--train-per-site") { Description = "Training sentences each site keeps from a real corpus (seeded random subsample, keeps the demo short); 0 = its whole share.", DefaultValueFactory = _ => DefaultTrainPerSite };
        var noComparison = new Option<bool>("--no-comparison") { Description = "Skip the closing 'was it worth it' comparison (each site alone, the federation without DP)." };
        var publicData = new Option<string?>("--public-data") { Description = "A public CoNLL corpus folder (not a hospital's data, e.g. ../shared/data/bc5cdr for NCBI-disease sites) to train the initial model on before round 1: the public warm start." };
        var publicEpochs = new Option<int>("--public-epochs") { Description = "Epochs of the public warm start.", DefaultValueFactory = _ => 10 };
        var dpDropout = new Option<bool>("--dp-dropout") { Description = "DP-SGD keeps the model's dropout in each example's gradient (the behaviour before session 20; the agents' DpDropout setting). By default DP-SGD trains without dropout: from a random model 5-13 points more test F1 at ε = 8 (8.3 over 3 seeds) (docs/utility.md \"Session 20\")." };
        var freeze = new Option<bool>("--freeze-embeddings") { Description = "DP-SGD keeps the initial model's embedding tables fixed (noise only on the encoder and head); most useful with --public-data." };
        var model = new Option<string>("--model") { Description = "Tagger: tiny-crf-encoder-mean (the default: 1-layer BiLSTM with a CRF head and small hashed tables, fed the mean of the frozen public encoder all-MiniLM-L6-v2's six layers' token vectors too: much better under DP without public data, docs/utility.md, 'Sessions 35 and 38'), tiny-crf-encoder (the same with the encoder's last layer only), tiny-encoder (that with a softmax head), tiny (fast: without the encoder), tiny-crf (tiny with a CRF head: better under DP after a --public-data warm start) or default (the full tagger).", DefaultValueFactory = _ => DemoSettings.DefaultModel };
        var sentences = new Option<int>("--sentences") { Description = "Synthetic training sentences per site.", DefaultValueFactory = _ => 1000 };
        var epochs = new Option<int>("--local-epochs") { Description = "DP-SGD local epochs per round: each site takes epochs × round(1/q) steps a round, at most --steps-per-round (the default 7 at q 0.3: 21 steps, capped at 20; 2 at q 0.1 up to session 41). The comparisons without DP train 2 local epochs a round, never more passes than the DP-SGD took.", DefaultValueFactory = _ => TrainingRecipe.Product.AnnouncedLocalEpochs };
        var siteNoise = new Option<double>("--site-noise") { Description = "Site-level (update) noise multiplier z of the distributed discrete Gaussian; with only a few hospitals a meaningful site-level epsilon costs most of the accuracy, so the default only shows the mechanism at work (its ε is no guarantee; docs/utility.md \"Session 8\" measured what z·S costs).", DefaultValueFactory = _ => 0.0005 };
        var sampleRate = new Option<double>("--sample-rate") { Description = "DP-SGD Poisson sampling rate q.", DefaultValueFactory = _ => TrainingRecipe.Product.SampleRate };
        var learningRate = new Option<double>("--lr") { Description = "Local learning rate (plain SGD on the noisy DP-SGD gradient; docs/utility.md has the search behind the default).", DefaultValueFactory = _ => TrainingRecipe.Product.DpLearningRate };
        var optimizer = new Option<string>("--optimizer") { Description = "Local optimiser: sgd (classic DP-SGD) or adam.", DefaultValueFactory = _ => TrainingRecipe.Product.DpOptimizer.ToString().ToLowerInvariant() };
        var gradClip = new Option<double>("--grad-clip") { Description = "DP-SGD per-example gradient clip C (L2 norm of a sentence's summed-loss gradient; the median is about 5 on NCBI-disease).", DefaultValueFactory = _ => TrainingRecipe.Product.GradClip };
        var updateClip = new Option<double>("--update-clip") { Description = "Site-level update clip S (L2 norm of a site's model delta; the site noise scales with it; a round of the default recipe moves a site by about 25 from a random model, 3 from a public warm start; with one step per round (--patient-noise distributed or --steps-per-round 1) the default is just above a step's expected norm instead, printed at the start).", DefaultValueFactory = _ => 30.0 };
        var layerScales = new Option<bool>("--layer-scales") { Description = "With --public-data: the aggregator announces layer-wise DP-SGD factors computed from the public data at the public model (docs/PROTOCOL.md \"Layer scales\"; the privacy guarantee is unchanged). Unless given, --lr becomes 4 (8 with one step per round: --patient-noise distributed or --steps-per-round 1) and --grad-clip 1, the recipe measured in docs/utility.md." };
        var stepsPerRound = new Option<int>("--steps-per-round") { Description = "Most DP-SGD steps each site takes per round (the aggregator's DpSgdMaxSteps): the default 20, the product recipe's; 0 = --local-epochs × round(1/q); 1 = one step from the round's global model (FedSGD: the sum of the sites' steps is one larger DP-SGD step; what --patient-noise distributed always does). The noise is calibrated to rounds × steps either way.", DefaultValueFactory = _ => TrainingRecipe.Product.DpStepsPerRound };
        var patientNoise = new Option<string>("--patient-noise") { Description = "local (each site adds the whole DP-SGD noise: ε holds even if the aggregator and all other sites collude; the default) or distributed (one DP-SGD step per round, each site adds σ/√k with k = min(sites, t): the sum the aggregator sees carries σ while secure aggregation holds; the larger collusion ε is printed; needs --optimizer sgd).", DefaultValueFactory = _ => "local" };
        var serverOptimizer = new Option<string>("--server-optimizer") { Description = "The aggregator's update rule on the averaged update (its ServerOptimizer setting): avg (FedAvg, the default), momentum (FedAvgM) or adam (FedAdam; docs/utility.md \"Session 14\"); post-processing of the sum, no privacy cost.", DefaultValueFactory = _ => "avg" };
        var serverLr = new Option<double>("--server-lr") { Description = "The aggregator's learning rate η on the averaged update (ServerLearningRate; with adam the experiment used 0.02, the demo's public-data recipe did best at 0.01: docs/utility.md \"Session 14\").", DefaultValueFactory = _ => 1.0 };
        var serverBeta1 = new Option<double>("--server-beta1") { Description = "Server momentum (momentum) or Adam's β1 (adam).", DefaultValueFactory = _ => 0.9 };
        var serverBeta2 = new Option<double>("--server-beta2") { Description = "Server Adam's β2.", DefaultValueFactory = _ => 0.99 };
        var serverTau = new Option<double>("--server-tau") { Description = "Server Adam's adaptivity τ (under DP noise far below its per-coordinate size: 1e-7 was measured).", DefaultValueFactory = _ => 1e-3 };
        var command = new Command("demo", "Run a throw-away federation on 127.0.0.1: provisioning, mTLS gRPC aggregator, hospital agents, secure aggregation with DP, audit.")
        {
            rounds, sites, epsilon, drop, dropRound, output, corpus, data, trainPerSite, noComparison, model, sentences, epochs, siteNoise, learningRate, sampleRate, optimizer, gradClip, updateClip, publicData, publicEpochs, freeze, dpDropout, patientNoise, stepsPerRound, layerScales,
            serverOptimizer, serverLr, serverBeta1, serverBeta2, serverTau,
        };
        command.SetAction(async (parse, ct) =>
        {
            int r = parse.GetValue(rounds);
            int n = parse.GetValue(sites);
            double eps = parse.GetValue(epsilon);
            if (r is < 1 or > 500)
            {
                throw new UsageException($"--rounds must be between 1 and 500, got {r}.");
            }

            if (n is < 2 or > 20)
            {
                throw new UsageException($"--sites must be between 2 and 20, got {n}.");
            }

            if (!(eps > 0) || double.IsInfinity(eps))
            {
                throw new UsageException($"--epsilon must be positive, got {eps.ToString(CultureInfo.InvariantCulture)}.");
            }

            if (EpsilonText.Problem("--epsilon", eps, 1e-5) is string tooSmall)
            {
                throw new UsageException(tooSmall);
            }

            ProtocolStage? dropAt = parse.GetValue(drop) switch
            {
                null => null,
                "advertise" => ProtocolStage.AdvertiseKeys,
                "share" => ProtocolStage.ShareKeys,
                "mask" => ProtocolStage.MaskedInputCollection,
                "consistency" => ProtocolStage.ConsistencyCheck,
                "unmask" => ProtocolStage.Unmasking,
                string other => throw new UsageException($"--drop-site-at must be advertise, share, mask, consistency or unmask, got '{other}'."),
            };
            if (dropAt is ProtocolStage.MaskedInputCollection or ProtocolStage.ConsistencyCheck or ProtocolStage.Unmasking && n < 3)
            {
                // t = 2 of 2: the round aborts once the updates have left, each site is charged for it (the noise is sized to
                // spend the whole budget), so no site can afford the round again, whatever --epsilon or --rounds.
                throw new UsageException($"--drop-site-at {parse.GetValue(drop)} needs --sites 3 or more: with {n} sites every round needs all of them (t = {n}), so the round aborts after the sites' updates have left, and the privacy budget each site was charged for it leaves none for the round's retry. advertise and share work with 2 sites (nothing has left them yet).");
            }

            string size = parse.GetValue(model) ?? DemoSettings.DefaultModel;
            if (!DemoRunner.ModelNames.Contains(size))
            {
                throw new UsageException($"--model must be {string.Join(", ", DemoRunner.ModelNames)}, got '{size}'.");
            }

            string? dataDir = parse.GetValue(data);
            if (dataDir is not null && parse.GetResult(corpus) is { Implicit: false })
            {
                throw new UsageException("--data and --corpus both choose the corpus; give one of them.");
            }

            string? corpusLabel = null;
            if (dataDir is not null && !Directory.Exists(dataDir))
            {
                throw new UsageException(File.Exists(dataDir)
                    ? $"--data {dataDir} is a file; give the folder that holds the corpus's train.tsv, dev.tsv and test.tsv."
                    : $"--data {dataDir}: no such folder.");
            }

            IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(parse.InvocationConfiguration.Output) });
            console.Profile.Width = TerminalWidth(parse.InvocationConfiguration.Output);
            string corpusName = parse.GetValue(corpus) ?? "ncbi-disease";
            if (dataDir is null)
            {
                switch (corpusName)
                {
                    case "synthetic":
                        break;
                    case "ncbi-disease":
                        dataDir = DemoCorpus.Locate(out IReadOnlyList<string> searched);
                        if (dataDir is null)
                        {
                            console.MarkupLine($"[yellow]NCBI-disease not found[/] ({Markup.Escape(DemoCorpus.RelativeDirectory)} under {Markup.Escape(string.Join(", ", searched.Take(3)))} or their parents): running on the embedded [bold]synthetic[/] corpus instead. Run from the repository clone, or pass --data DIR or --corpus synthetic.");
                        }
                        else
                        {
                            corpusLabel = "NCBI-disease (PubMed abstracts, Disease mentions; CC BY 4.0, see data/ncbi-disease/README.md)";
                        }

                        break;
                    default:
                        throw new UsageException($"--corpus must be ncbi-disease or synthetic, got '{corpusName}'.");
                }
            }

            if (parse.GetValue(publicData) is string givenPublic)
            {
                if (string.IsNullOrWhiteSpace(givenPublic))
                {
                    throw new UsageException("--public-data is blank; give the folder of a public CoNLL corpus (train.tsv, dev.tsv, test.tsv), or leave --public-data out.");
                }

                if (!Directory.Exists(givenPublic))
                {
                    throw new UsageException(File.Exists(givenPublic)
                        ? $"--public-data {givenPublic} is a file; give the folder that holds the public corpus's train.tsv, dev.tsv and test.tsv."
                        : $"--public-data {givenPublic}: no such folder.");
                }

                // Before the banner and the output folder (it was refused only when the warm start began).
                string publicTrain = Path.Combine(givenPublic, "train.tsv");
                if (!File.Exists(publicTrain))
                {
                    throw new UsageException($"--public-data: {publicTrain} does not exist (a CoNLL corpus folder with train.tsv is needed).");
                }

                if (dataDir is not null)
                {
                    RequirePublicCorpusOtherThan(givenPublic, dataDir);
                }
            }
            else if (Given(parse, publicEpochs))
            {
                // It would be ignored: there is no warm start to train.
                throw new UsageException("--public-epochs applies only with --public-data (the epochs of the public warm start); give --public-data too, or leave --public-epochs out.");
            }

            int perSite = parse.GetValue(trainPerSite);
            if (perSite < 0)
            {
                throw new UsageException($"--train-per-site must be 0 (all) or positive, got {perSite}.");
            }

            // Each corpus has its own size option; the other one would be ignored.
            if (dataDir is null && corpusName == "synthetic" && Given(parse, trainPerSite))
            {
                throw new UsageException("--train-per-site subsamples a real corpus (--data, or the default NCBI-disease); the synthetic corpus is sized with --sentences (per site).");
            }

            if (dataDir is not null && Given(parse, sentences))
            {
                throw new UsageException("--sentences sizes the synthetic corpus (--corpus synthetic); a real corpus gives each site its share of train.tsv, subsampled with --train-per-site.");
            }

            if (parse.GetValue(output) is { } givenOut && string.IsNullOrWhiteSpace(givenOut))
            {
                throw new UsageException("--out is blank; give a folder that does not exist or is empty, or leave --out out for ./securefed-demo-<UTC time>.");
            }

            int dropIn = parse.GetValue(dropRound);
            if (dropAt is null && Given(parse, dropRound))
            {
                // It was ignored: no site dropped out, in round 2 or any other.
                throw new UsageException($"--drop-round {dropIn} applies only with --drop-site-at (the stage at which the last site goes silent); give --drop-site-at too, or leave --drop-round out.");
            }

            string outDir = parse.GetValue(output) ?? DefaultOutputDirectory(Environment.CurrentDirectory, DateTime.UtcNow);
            OutputPaths.RequireNewFolder(outDir, "--out", "earlier results");
            OutputPaths.RequireWritableFolder(outDir, "--out");

            int sentenceCount = parse.GetValue(sentences);
            if (sentenceCount is < 20 or > 100_000)
            {
                throw new UsageException($"--sentences must be between 20 and 100000, got {sentenceCount}.");
            }

            int localEpochs = parse.GetValue(epochs);
            if (localEpochs is < 1 or > 50)
            {
                throw new UsageException($"--local-epochs must be between 1 and 50, got {localEpochs}.");
            }

            double z = PositiveNumber(parse.GetValue(siteNoise), "--site-noise");
            double lr = PositiveFloat32(parse.GetValue(learningRate), "--lr");

            double q = parse.GetValue(sampleRate);
            if (!(q > 0 && q <= 1))
            {
                throw new UsageException($"--sample-rate must be in (0, 1], got {q.ToString(CultureInfo.InvariantCulture)}.");
            }

            double c = PositiveFloat32(parse.GetValue(gradClip), "--grad-clip");
            double s = PositiveNumber(parse.GetValue(updateClip), "--update-clip");

            TaggerOptimizer opt = parse.GetValue(optimizer) switch
            {
                "sgd" => TaggerOptimizer.Sgd,
                "adam" => TaggerOptimizer.Adam,
                string other => throw new UsageException($"--optimizer must be sgd or adam, got '{other}'."),
                null => throw new UsageException("--optimizer must be sgd or adam."),
            };

            bool distributed = parse.GetValue(patientNoise) switch
            {
                "local" => false,
                "distributed" => true,
                string other => throw new UsageException($"--patient-noise must be local or distributed, got '{other}'."),
                null => throw new UsageException("--patient-noise must be local or distributed."),
            };
            if (distributed && opt != TaggerOptimizer.Sgd)
            {
                throw new UsageException("--patient-noise distributed needs --optimizer sgd: with adam a site's step is not linear in its noisy gradient, so the sum of the sites' steps would not be one DP-SGD step.");
            }

            int steps = parse.GetValue(stepsPerRound);
            if (steps is < 0 or > 100_000)
            {
                throw new UsageException($"--steps-per-round must be 0 (local epochs × round(1/q)) or positive, got {steps}.");
            }

            if (distributed && Given(parse, stepsPerRound) && steps != 1)
            {
                throw new UsageException("--patient-noise distributed takes exactly one DP-SGD step per round; leave --steps-per-round out or give 1.");
            }

            if (DpSgdOptions.StepsProblem(q, localEpochs, distributed ? 1 : steps) is string tooManySteps)
            {
                throw new UsageException("--sample-rate: " + tooManySteps);
            }

            if ((distributed || steps == 1) && !Given(parse, rounds))
            {
                // One DP-SGD step per round: as many rounds as the default recipe's steps (10 rounds × 20 steps, 200), at
                // most 500; the default 10 rounds would be 10 steps, far too few to learn anything.
                r = OneStepRounds(q, localEpochs);
            }

            if (dropAt is not null && (dropIn < 1 || dropIn > r))
            {
                throw new UsageException(Given(parse, rounds) || !(distributed || steps == 1)
                    ? $"--drop-round must be a round of this run, 1 to {r} (--rounds), got {dropIn}."
                    : $"--drop-round must be a round of this run, 1 to {r} (one DP-SGD step a round: {r} rounds unless --rounds says otherwise), got {dropIn}.");
            }

            bool scales = parse.GetValue(layerScales);
            if (scales)
            {
                if (parse.GetValue(publicData) is null)
                {
                    throw new UsageException("--layer-scales needs --public-data: the factors come from public data at the public model (at a random model they are wrong, docs/utility.md).");
                }

                // The recipe measured with the factors (docs/utility.md): the preconditioned gradients are smaller, so C comes down and lr up.
                // One step per round (split noise always, local noise with --steps-per-round 1) takes the larger lr of the experiment's recipe.
                lr = Given(parse, learningRate) ? lr : distributed || steps == 1 ? 8 : 4;
                c = Given(parse, gradClip) ? c : 1;
            }

            ServerOptimizerOptions serverRule;
            try
            {
                serverRule = new ServerOptimizerOptions
                {
                    Kind = ServerOptimizerOptions.ParseKind(parse.GetValue(serverOptimizer) ?? "avg"),
                    LearningRate = parse.GetValue(serverLr),
                    Beta1 = parse.GetValue(serverBeta1),
                    Beta2 = parse.GetValue(serverBeta2),
                    Tau = parse.GetValue(serverTau),
                };
            }
            catch (ArgumentException ex)
            {
                throw new UsageException("--server-optimizer: " + ex.Message);
            }

            if (serverRule.Validate(ServerOptimizerOptions.CommandLineOption) is { Count: > 0 } serverProblems)
            {
                throw new UsageException(string.Join(" ", serverProblems));
            }

            var settings = new DemoSettings
            {
                ServerRule = serverRule,
                LayerScales = scales,
                DistributedPatientNoise = distributed,
                StepsPerRound = distributed ? 1 : steps,
                Optimizer = opt,
                GradClip = c,
                L2Clip = s,
                AutoUpdateClip = !Given(parse, updateClip),
                SampleRate = q,
                SiteNoiseMultiplier = z,
                LearningRate = lr,
                OutputDirectory = outDir,
                Rounds = r,
                Sites = n,
                Epsilon = eps,
                DropAt = dropAt,
                DropRound = dropIn,
                DataDirectory = dataDir,
                CorpusLabel = corpusLabel,
                TrainSentencesPerSite = perSite,
                CompareBaselines = !parse.GetValue(noComparison),
                Model = size,
                SentencesPerSite = sentenceCount,
                LocalEpochs = localEpochs,
                PublicDataDirectory = parse.GetValue(publicData),
                PublicEpochs = parse.GetValue(publicEpochs) is int pe && pe is >= 1 and <= 200 ? pe : throw new UsageException("--public-epochs must be between 1 and 200."),
                FreezeEmbeddings = parse.GetValue(freeze),
                DpDropout = parse.GetValue(dpDropout),
            };
            double sigma = DemoRunner.PatientNoiseMultiplier(settings);
            if (sigma < MinPatientNoiseMultiplier)
            {
                // σ = 0.000 in the demo's own words: DP-SGD that adds no noise, under an ε that promises privacy.
                throw new UsageException(string.Create(CultureInfo.InvariantCulture,
                    $"--epsilon {eps:R} is so large that the DP-SGD noise it calibrates is σ = {sigma:G3} (below {MinPatientNoiseMultiplier}) after {DemoRunner.TotalSteps(settings)} steps: patient-level DP would add no noise, and such an ε protects no one. ε is the privacy loss (typically 1 to 10; the default is 8)."));
            }

            return await new DemoRunner(settings, console).RunAsync(ct).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary>
    /// Refuses a --public-data corpus that is the corpus the sites train on and are tested on (the same folder by full path,
    /// or a file of one with the same content as a file of the other: a link to it or a copy): the warm start trains on its
    /// train, dev and test files, so the test F1 would be inflated. As <c>experiment --warm-start</c> refuses.
    /// </summary>
    private static void RequirePublicCorpusOtherThan(string publicDir, string dataDir)
    {
        string[] files = ["train.tsv", "dev.tsv", "test.tsv"];
        bool sameFolder = OutputPaths.SamePath(publicDir, dataDir);
        string? shared = sameFolder ? null : (from p in files
                                              let pub = Path.Combine(publicDir, p)
                                              from d in files
                                              let own = Path.Combine(dataDir, d)
                                              where File.Exists(pub) && File.Exists(own) && SameContent(pub, own)
                                              select $"{pub} has the same content as {own}").FirstOrDefault();
        if (sameFolder || shared is not null)
        {
            throw new UsageException($"--public-data {publicDir} must be a public corpus other than the one the sites train and are tested on ({dataDir}{(shared is null ? "" : "; " + shared)}): the warm start trains on its train, dev and test files, which would inflate the test F1.");
        }

        static bool SameContent(string a, string b) =>
            new FileInfo(a).Length == new FileInfo(b).Length && File.ReadAllBytes(a).AsSpan().SequenceEqual(File.ReadAllBytes(b));
    }

    /// <summary>
    /// The smallest DP-SGD noise multiplier σ the demo runs with: it prints σ with three decimals, and a smaller one (an ε
    /// of about 10^8 or more at the defaults) would be shown, and act, as σ = 0.000.
    /// </summary>
    internal const double MinPatientNoiseMultiplier = 0.0005;

    /// <summary><paramref name="value"/> if it is finite and &gt; 0; otherwise a usage error naming <paramref name="option"/> and the value.</summary>
    private static double PositiveNumber(double value, string option) =>
        value > 0 && double.IsFinite(value)
            ? value
            : throw new UsageException($"{option} must be a positive number, got {value.ToString(CultureInfo.InvariantCulture)}.");

    /// <summary>A value the sites hand libtorch as a 32-bit float scalar (the learning rate, the clip C).</summary>
    private static double PositiveFloat32(double value, string option) =>
        Float32Scalar.IsTooLarge(PositiveNumber(value, option)) ? throw new UsageException(Float32Scalar.TooLarge(option, value)) : value;

    /// <summary>Whether <paramref name="option"/> was given on the command line (not its default).</summary>
    private static bool Given(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    /// <summary>
    /// The rounds of one DP-SGD step each that take as many steps as the default rounds do: 10 × the steps an agent takes
    /// a round, local epochs × round(1/q) capped at the product recipe's 20 (at most 500).
    /// </summary>
    internal static int OneStepRounds(double sampleRate, int localEpochs) =>
        (int)Math.Min(500, DemoSettings.DefaultRounds * DpSgdOptions.StepsPerRound(localEpochs, sampleRate, TrainingRecipe.Product.DpStepsPerRound));

    /// <summary>The terminal's width when writing to it (Console.WindowWidth), else 100 columns.</summary>
    internal static int TerminalWidth(TextWriter output)
    {
        if (ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected)
        {
            try
            {
                int width = Console.WindowWidth;
                if (width >= 40)
                {
                    return width;
                }
            }
            catch (IOException)
            {
                // no console attached
            }
        }

        return 100;
    }

    /// <summary>
    /// ./securefed-demo-&lt;UTC time to the second&gt;, or with -2, -3, … when a run started in the same second already has
    /// that folder (two runs racing for one name are told apart when the run reserves its folder).
    /// </summary>
    internal static string DefaultOutputDirectory(string parent, DateTime utcNow)
    {
        string name = "securefed-demo-" + utcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
        string path = Path.Combine(parent, name);
        for (int n = 2; Directory.Exists(path) || File.Exists(path); n++)
        {
            path = Path.Combine(parent, string.Create(CultureInfo.InvariantCulture, $"{name}-{n}"));
        }

        return path;
    }
}
