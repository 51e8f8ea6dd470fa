using System.Globalization;
using SecureFed.Privacy;
using SecureFed.Protocol;
using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>Settings of <c>securefed experiment</c>. Every arm uses the same model config, seed and local-epoch budget.</summary>
public sealed record ExperimentOptions
{
    /// <summary>The most sites an experiment simulates (<c>--sites</c>).</summary>
    public const int MaxSites = 1000;

    /// <summary>A CoNLL corpus folder (train.tsv, dev.tsv, test.tsv) for the iid and skewed splits.</summary>
    /// <value>The default value is null.</value>
    public string? DataDirectory { get; init; }

    /// <summary>Corpus folders for the by-corpus split, one per site.</summary>
    /// <value>The default value is empty.</value>
    public IReadOnlyList<string> Corpora { get; init; } = [];

    /// <summary>Number of sites (by-corpus: the number of corpora).</summary>
    /// <value>The default value is 3.</value>
    public int Sites { get; init; } = 3;

    /// <summary>How the training data is divided.</summary>
    /// <value>The default value is <see cref="ExperimentSplit.Iid"/>.</value>
    public ExperimentSplit Split { get; init; } = ExperimentSplit.Iid;

    /// <summary>Shares of the skewed split, one per site, summing to 1 (empty = 60/30/10 for 3 sites, halving otherwise).</summary>
    /// <value>The default value is empty.</value>
    public IReadOnlyList<double> SkewShares { get; init; } = [];

    /// <summary>Patient-level ε of the DP arms (δ = <see cref="Delta"/>), each at least <see cref="EpsilonText.Minimum"/>; empty runs no DP arm.</summary>
    /// <value>The default value is 1, 3, 8.</value>
    public IReadOnlyList<double> Epsilons { get; init; } = [1, 3, 8];

    /// <summary>Seeds (1, 2, …, Seeds): model initialisation, data split, batch order.</summary>
    /// <value>The default value is 2.</value>
    public int Seeds { get; init; } = 2;

    /// <summary>The first seed (seeds FirstSeed … FirstSeed + Seeds − 1), so seeds can run in separate processes.</summary>
    /// <value>The default value is 1.</value>
    public int FirstSeed { get; init; } = 1;

    /// <summary>Model configuration: tiny, default, or the path of a JSON file written by TaggerConfig.ToJson; stated in the output.</summary>
    /// <value>The default value is "tiny".</value>
    public string ConfigName { get; init; } = "tiny";

    private TaggerConfig? _config;
    private string? _configSource;

    /// <summary>Output folder (results.json, f1-per-round.png).</summary>
    /// <value>The default value is "experiment-out".</value>
    public string OutputDirectory { get; init; } = "experiment-out";

    /// <summary>Federated rounds; the centralized arms train the same number of chunks of <see cref="LocalEpochs"/> epochs.</summary>
    /// <value>The default value is 10.</value>
    public int Rounds { get; init; } = 10;

    /// <summary>
    /// Local epochs per round: the budget of every arm without DP is Rounds × LocalEpochs epochs over its data; the DP-SGD
    /// arms take <see cref="DpStepsPerRound"/> steps a round (LocalEpochs × round(1/q) when that is 0).
    /// </summary>
    /// <value>The default value is <see cref="TrainingRecipe.Product"/>'s, 2.</value>
    public int LocalEpochs { get; init; } = TrainingRecipe.Product.LocalEpochs;

    /// <summary>Cap on training sentences per corpus (0 = all), for quick runs.</summary>
    /// <value>The default value is 0.</value>
    public int MaxTrainSentences { get; init; }

    /// <summary>Cap on dev and test sentences per corpus (0 = all), for quick runs.</summary>
    /// <value>The default value is 0.</value>
    public int MaxEvalSentences { get; init; }

    /// <summary>Local optimiser without DP.</summary>
    /// <value>The default value is <see cref="TaggerOptimizer.Adam"/>.</value>
    public TaggerOptimizer Optimizer { get; init; } = TaggerOptimizer.Adam;

    /// <summary>Learning rate without DP.</summary>
    /// <value>The default value is the product recipe's (<see cref="TrainingRecipe.LearningRate"/>, 0.01).</value>
    public double LearningRate { get; init; } = TrainingRecipe.Product.LearningRate;

    /// <summary>Learning-rate decay per round: round r trains at rate / (1 + decay · (r − 1)) (with and without DP); 0 = constant.</summary>
    /// <value>The default value is 0.</value>
    public double LearningRateDecay { get; init; }

    /// <summary>Batch size without DP.</summary>
    /// <value>The default value is 32.</value>
    public int BatchSize { get; init; } = 32;

    /// <summary>Local optimiser of the DP-SGD arms.</summary>
    /// <value>The default value is <see cref="TrainingRecipe.Product"/>'s, <see cref="TaggerOptimizer.Sgd"/>.</value>
    public TaggerOptimizer DpOptimizer { get; init; } = TrainingRecipe.Product.DpOptimizer;

    /// <summary>Learning rate of the DP-SGD arms.</summary>
    /// <value>The default value is <see cref="TrainingRecipe.Product"/>'s, 2.</value>
    public double DpLearningRate { get; init; } = TrainingRecipe.Product.DpLearningRate;

    /// <summary>
    /// Decoupled weight decay λ of the DP-SGD arms' local steps (<see cref="TrainOptions.WeightDecay"/>): each step scales
    /// the weights by 1 − lr·λ before the noisy update, so the noise in directions no example pulls back stays bounded
    /// instead of accumulating over the steps; post-processing, no privacy cost. 0 = off.
    /// </summary>
    /// <value>The default value is 0.</value>
    public double DpWeightDecay { get; init; }

    /// <summary>DP-SGD Poisson sampling rate q (expected batch q·N).</summary>
    /// <value>The default value is <see cref="TrainingRecipe.Product"/>'s, 0.3.</value>
    public double SampleRate { get; init; } = TrainingRecipe.Product.SampleRate;

    /// <summary>
    /// DP-SGD steps per site per round (each a Poisson sample of expected size q·N); 0 = LocalEpochs × round(1/q), i.e.
    /// the same epochs as the arms without DP. Fewer, larger steps at the same ε need less noise per step.
    /// </summary>
    /// <value>The default value is <see cref="TrainingRecipe.Product"/>'s, 20.</value>
    public int DpStepsPerRound { get; init; } = TrainingRecipe.Product.DpStepsPerRound;

    /// <summary>DP-SGD per-example gradient clip C.</summary>
    /// <value>The default value is <see cref="TrainingRecipe.Product"/>'s, 2.</value>
    public double GradClip { get; init; } = TrainingRecipe.Product.GradClip;

    /// <summary>
    /// Adaptive clipping to a norm quantile (Andrew, Thakkar, McMahan &amp; Ramaswamy, NeurIPS 2021): the target fraction γ
    /// of sampled examples left unclipped; 0 = a fixed clip. C starts at <see cref="GradClip"/> and after every round
    /// becomes C · exp(−η_C (b̃ − γ)), b̃ the fraction of the round's sampled examples whose norm (the one clipped: after
    /// the preconditioner's part before clipping) was at most C, released with Gaussian noise σ_b
    /// (<see cref="ClipCountNoise"/>) and summed over the sites. The sum's noise multiplier is raised to
    /// σ_Δ = (σ⁻² − (2σ_b)⁻²)^(−1/2) so that the pair is the accountant's σ and ε is unchanged. Needs one DP-SGD step
    /// per round (<see cref="DpStepsPerRound"/> = 1).
    /// </summary>
    /// <value>The default value is 0 (off).</value>
    public double AdaptiveClipQuantile { get; init; }

    /// <summary>η_C of <see cref="AdaptiveClipQuantile"/>'s geometric update.</summary>
    /// <value>The default value is 0.2 (the paper's).</value>
    public double ClipLearningRate { get; init; } = DefaultClipLearningRate;

    /// <summary>
    /// σ_b of <see cref="AdaptiveClipQuantile"/>, in counts: the noise in the sum of the sites' unclipped counts with
    /// <see cref="DpDistributedNoise"/> (each site adds σ_b / √n), each site's otherwise; must exceed σ / 2. Null = the
    /// paper's default, the expected batch size of the noised count / 20 (q N with distributed noise, q times the
    /// smallest site's N otherwise).
    /// </summary>
    /// <value>The default value is null.</value>
    public double? ClipCountNoise { get; init; }

    /// <summary>The default of <see cref="ClipLearningRate"/>.</summary>
    public const double DefaultClipLearningRate = 0.2;

    /// <summary>DP-SGD keeps the embedding tables fixed (<see cref="DpSgdOptions.FreezeEmbeddings"/>).</summary>
    public bool DpFreezeEmbeddings { get; init; }

    /// <summary>DP-SGD's per-example gradients without dropout (<see cref="DpSgdOptions.NoDropout"/>).</summary>
    /// <value>The default value is <see cref="TrainingRecipe.Product"/>'s, true.</value>
    public bool DpNoDropout { get; init; } = TrainingRecipe.Product.DpNoDropout;

    /// <summary>The name of the <see cref="TrainingRecipe"/> whose defaults the command line started from (recorded in results.json).</summary>
    /// <value>The default value is <see cref="TrainingRecipe.Product"/>'s name.</value>
    public string RecipeName { get; init; } = TrainingRecipe.Product.Name;

    /// <summary>
    /// DP-SGD preconditions each example's gradient with Adam's second moments measured on the public warm-start corpus
    /// at the public model (AdaDPS, <see cref="TaggerPreconditioner"/>); needs <see cref="WarmStartDirectory"/>.
    /// </summary>
    public bool DpPrecondition { get; init; }

    /// <summary>With <see cref="DpPrecondition"/>: scale the privatised gradient instead of each example's (<see cref="DpSgdOptions.PreconditionAfterNoise"/>).</summary>
    public bool DpPreconditionAfterNoise { get; init; }

    /// <summary>With <see cref="DpPrecondition"/>: the exponent α of the factors applied before clipping; the noisy gradient gets the rest (<see cref="DpSgdOptions.PreconditionSplit"/>).</summary>
    /// <value>The default value is 1 (all before clipping).</value>
    public double DpPreconditionSplit { get; init; } = 1;

    /// <summary>The preconditioner's floor as a fraction of the median public gradient RMS (<see cref="TaggerPreconditioner.FromPublicData"/>).</summary>
    /// <value>The default value is 0.1.</value>
    public double DpPreconditionFloor { get; init; } = 0.1;

    /// <summary>With <see cref="DpPrecondition"/>: one factor per weight tensor (layer-wise) instead of per coordinate.</summary>
    public bool DpPreconditionPerTensor { get; init; }

    /// <summary>
    /// k of projected DP-SGD (<see cref="TaggerGradientSubspace"/>): each example's gradient is projected onto the top-k
    /// principal directions of public per-example gradients (the --warm-start corpus) before clipping and the noise; 0 = off.
    /// </summary>
    public int DpSubspace { get; init; }

    /// <summary>Public sentences whose gradients span the subspace (n ≥ k).</summary>
    /// <value>The default value is 1000.</value>
    public int DpSubspaceSentences { get; init; } = 1000;

    /// <summary>Recompute the subspace at the current global model every this many rounds (0 = only at the initial model).</summary>
    public int DpSubspaceRefresh { get; init; }

    /// <summary>
    /// Splits each DP-SGD step's Gaussian noise across the sites (distributed patient-level DP): each site adds
    /// N(0, (σC)²/n) instead of N(0, (σC)²), so the sum secure aggregation reveals carries the noise of one DP-SGD step
    /// over every site's data. Needs one DP-SGD step per round (FedSGD, <see cref="DpStepsPerRound"/> = 1): only then
    /// is the revealed sum that step's Gaussian mechanism. ε then holds against the aggregator while every site's
    /// share is in the sum; against the other sites colluding with it, each site's own share gives the weaker
    /// <see cref="ArmResult"/> collusion ε.
    /// </summary>
    public bool DpDistributedNoise { get; init; }

    /// <summary>
    /// With <see cref="DpDistributedNoise"/>: k, the shares the noise is split into, each site adding N(0, (σC)²/k), so that
    /// any k sites' sum carries σ (the product's <c>DpSgdNoiseShares</c>, at most the round's threshold t so that a round
    /// that loses sites down to t still carries σ: k = 2 for 3 sites at the default t). With every site in every sum, as
    /// here, the sum then carries σ √(n/k), more noise than the guarantee needs. Null: k = n, the number of sites.
    /// </summary>
    public int? DpNoiseShares { get; init; }

    /// <summary>
    /// Exponential moving average of the global models, updated after every round with this decay (warm-up as
    /// <see cref="TrainOptions.WeightAverageDecay"/>: min(decay, (1 + r) / (10 + r)) at round r); the averaged model is
    /// the one scored and reported, the sites keep training from the raw global model. Post-processing of the released
    /// models: it costs no privacy. 0 = off.
    /// </summary>
    public double ServerWeightAverage { get; init; }

    /// <summary>
    /// Polyak–Ruppert tail averaging: from this round on, the model scored and reported is the uniform mean of the global
    /// models after this round and every later one (the last <see cref="Rounds"/> − this + 1 rounds); the sites keep
    /// training from the raw global model. Post-processing of the released models: it costs no privacy. 0 = off; not
    /// with <see cref="ServerWeightAverage"/>.
    /// </summary>
    public int ServerAverageFrom { get; init; }

    /// <summary>
    /// Keeps every round's global model and, after each federated arm, scores on the dev and test sets the last global
    /// model, uniform tail averages over the last 10, 25, 50, 100 and Rounds / 2 rounds, and bias-corrected moving
    /// averages with decays 0.9, 0.95, 0.98 and 0.99 (<see cref="ModelAverages"/>): one run measures every averaging
    /// window of the same trajectory (choose on the dev F1). Changes nothing in training or in the reported model.
    /// </summary>
    public bool ServerAverageSweep { get; init; }

    /// <summary>
    /// Public-data-assisted server steps (DP arms only): every round the server also takes one step of the sites' own
    /// kind on the public <see cref="WarmStartDirectory"/> corpus from the model the sites trained from (the same
    /// preconditioner, clip and learning rate, no noise, a Poisson batch of the same expected size as one site's), and
    /// adds it, times this weight, to the averaged update before its update rule. The weight decays linearly to 0 after
    /// round <see cref="PublicMixUntil"/>. Public data and the public model only: it costs no privacy. 0 = off.
    /// </summary>
    public double PublicMix { get; init; }

    /// <summary>The last round with a public step (the weight at round r is <see cref="PublicMix"/> × (1 − (r − 1) / this)); 0 = <see cref="Rounds"/>.</summary>
    public int PublicMixUntil { get; init; }

    /// <summary>The public step's weight at <paramref name="round"/> (1-based).</summary>
    public double PublicMixWeight(int round)
    {
        int until = PublicMixUntil > 0 ? PublicMixUntil : Rounds;
        return PublicMix > 0 && round <= until ? PublicMix * (1 - ((round - 1) / (double)until)) : 0;
    }

    /// <summary>δ of the patient-level guarantee.</summary>
    /// <value>The default value is 1e-5.</value>
    public double Delta { get; init; } = 1e-5;

    /// <summary>
    /// Calibrates σ (and reports ε) with the PLD accountant (<see cref="PldAccountant"/>, tighter) instead of the Rényi-DP
    /// accountant the product's ledger uses.
    /// </summary>
    public bool PldAccounting { get; init; }

    /// <summary>Site-level L2 clip S of a site's model delta (as the aggregator announces it).</summary>
    /// <value>The default value is 1000.</value>
    public double UpdateClip { get; init; } = 1000;

    /// <summary>Site-level distributed-DP noise multiplier z; 0 runs no site-level arm and adds no site noise elsewhere.</summary>
    /// <value>The default value is 0.</value>
    public double SiteNoiseMultiplier { get; init; }

    /// <summary>Server learning rate applied to the averaged update.</summary>
    /// <value>The default value is 1.</value>
    public double ServerLearningRate { get; init; } = 1.0;

    /// <summary>The aggregator's update rule: avg, momentum or adam (<see cref="ServerOptimizer"/>).</summary>
    /// <value>The default value is avg.</value>
    public string ServerOptimizerName { get; init; } = "avg";

    /// <summary>β₁ of the server optimizer (momentum; Adam's first moment).</summary>
    /// <value>The default value is 0.9.</value>
    public double ServerBeta1 { get; init; } = 0.9;

    /// <summary>β₂ of the server Adam.</summary>
    /// <value>The default value is 0.99.</value>
    public double ServerBeta2 { get; init; } = 0.99;

    /// <summary>τ of the server Adam.</summary>
    /// <value>The default value is 1e-3.</value>
    public double ServerTau { get; init; } = 1e-3;

    /// <summary>
    /// With the adam server optimizer: on DP arms, correct its second moment for the DP noise's variance Φ per
    /// coordinate of the averaged update (DP-AdamBC; <see cref="ServerOptimizerOptions.NoiseVariance"/>).
    /// </summary>
    /// <value>The default value is false.</value>
    public bool ServerNoiseCorrection { get; init; }

    /// <summary>With <see cref="ServerNoiseCorrection"/>: the floor of the corrected second moment, a multiple of Φ.</summary>
    /// <value>The default value is 1.</value>
    public double ServerNoiseFloor { get; init; } = 1;

    /// <summary>
    /// κ of DiSK's simplified Kalman filter on the averaged update (<see cref="LookaheadFilter"/>): the sites train
    /// from x_t + ((1 − κ) / κ)(x_t − x_{t−1}) and the server's update rule gets (1 − κ)·g_{t−1} + κ·(this round's
    /// averaged update). Post-processing of the released sums: no privacy cost. 1 = off.
    /// </summary>
    /// <value>The default value is 1 (off).</value>
    public double ServerKalman { get; init; } = 1;

    /// <summary>The server optimizer's options.</summary>
    public ServerOptimizerOptions ServerOptimizer => new()
    {
        Kind = ServerOptimizerOptions.ParseKind(ServerOptimizerName),
        LearningRate = ServerLearningRate,
        Beta1 = ServerBeta1,
        Beta2 = ServerBeta2,
        Tau = ServerTau,
        NoiseFloor = ServerNoiseFloor,
    };

    /// <summary>
    /// Optional public corpus folder: a model is first trained on its train.tsv (entity types limited to the sites' types)
    /// and announced as the initial model of every arm. It must not be the evaluated corpus.
    /// </summary>
    /// <value>The default value is null.</value>
    public string? WarmStartDirectory { get; init; }

    /// <summary>Epochs of the public warm start (0 with <see cref="DpPrecondition"/>: the initial model stays random and the public corpus only feeds the preconditioner).</summary>
    /// <value>The default value is 3.</value>
    public int WarmStartEpochs { get; init; } = 3;

    /// <summary>
    /// Folder where the public warm-start model is kept, keyed by everything it depends on (public corpus, epochs,
    /// model config, entity types, seed): a later run with the same key loads it instead of training it again.
    /// </summary>
    public string? WarmStartCache { get; init; }

    /// <summary>
    /// Trains the public warm start on every split of the public corpus (train.tsv, dev.tsv and test.tsv: all of a public
    /// corpus is public) instead of its train.tsv only.
    /// </summary>
    public bool WarmStartAllSplits { get; init; }

    /// <summary>
    /// Public corpus folders whose text (train.tsv, dev.tsv and test.tsv; tokens only, the labels are ignored) pretrains
    /// the encoder of the public warm start with a bidirectional language-model objective (<see cref="TaggerLanguageModel"/>)
    /// before it is trained on <see cref="WarmStartDirectory"/>; empty = no pretraining. Never an evaluated corpus.
    /// </summary>
    /// <value>The default value is empty.</value>
    public IReadOnlyList<string> PretrainTextDirectories { get; init; } = [];

    /// <summary>Passes of the language-model pretraining over <see cref="PretrainTextDirectories"/>.</summary>
    /// <value>The default value is 1.</value>
    public int PretrainEpochs { get; init; } = 1;

    /// <summary>
    /// Public corpus folders whose text (train.tsv, dev.tsv and test.tsv; tokens only, the labels are ignored) the final
    /// model of every federated arm (the teacher) tags with its Viterbi labels; a student initialised from the teacher is
    /// then trained on those pseudo-labels (<see cref="PublicDistillation"/>). The teacher and public text only:
    /// post-processing, no privacy cost. Empty = no distillation. Never an evaluated corpus.
    /// </summary>
    /// <value>The default value is empty.</value>
    public IReadOnlyList<string> DistillTextDirectories { get; init; } = [];

    /// <summary>Epochs of the student's training on the pseudo-labelled public text (the epoch with the best dev F1 is kept).</summary>
    /// <value>The default value is 3.</value>
    public int DistillEpochs { get; init; } = 3;

    /// <summary>The student's Adam learning rate (batches of <see cref="BatchSize"/>).</summary>
    /// <value>The default value is 0.003 (the centralized tagger's).</value>
    public double DistillLearningRate { get; init; } = 0.003;

    /// <summary>
    /// A tagger model folder written by an earlier run (its <c>models/</c> folder): instead of training any arm, self-train
    /// this model on <see cref="DistillTextDirectories"/> and report it next to its student (student variants without
    /// training the teacher again). Null = train the arms.
    /// </summary>
    public string? DistillTeacherDirectory { get; init; }

    /// <summary>Also run the arms without DP (site alone, pooled, federated); false runs only the DP arms (recipe search).</summary>
    /// <value>The default value is true.</value>
    public bool RunNonPrivateArms { get; init; } = true;

    /// <summary>
    /// With the by-corpus split, train each sentence on partial labels (<see cref="Sentence.AnnotatedTypes"/>: its
    /// corpus's types), so that a corpus that does not annotate a type does not teach that its entities are O.
    /// </summary>
    /// <value>The default value is true.</value>
    public bool PartialAnnotation { get; init; } = true;

    /// <summary>Run the centralized arms (each site alone, pooled); false runs only the federated ones (recipe search).</summary>
    /// <value>The default value is true.</value>
    public bool RunCentralizedArms { get; init; } = true;

    /// <summary>
    /// Run only the pooled (centralized) arm: the upper bound at another budget of epochs than an earlier full run
    /// (e.g. after a federated-only run with more rounds). Needs no --epsilon and excludes --federated-only.
    /// </summary>
    /// <value>The default value is false.</value>
    public bool PooledOnly { get; init; }

    /// <summary>Torch threads (0 = auto).</summary>
    /// <value>The default value is 0.</value>
    public int Threads { get; init; }

    /// <summary>
    /// The names of the options given on the command line (<c>--clip-lr</c>, say), so that <see cref="Validate"/> reports an
    /// option that needs another one, or the DP arms, when it is given at its default value as at any other (it compared
    /// the value with the default, so <c>--clip-lr 0.2</c> without <c>--adaptive-clip</c> passed silently). Options built in
    /// code leave it empty: a value other than the default then counts as given.
    /// </summary>
    /// <value>The default value is empty.</value>
    public IReadOnlySet<string> GivenOptions { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>
    /// The options that only matter when DP arms run (DP-SGD, its clip, sampling, noise and accountant, the public server
    /// steps and the noise correction of the DP arms, the site-level DP arm), each with whether its value differs from
    /// its default (for options built in code; a recipe option's default is the recipe's, so only given counts for it).
    /// </summary>
    private IEnumerable<(string Option, bool Changed)> DpOnlyOptions() =>
    [
        ("--dp-only", !RunNonPrivateArms),
        ("--dp-optimizer", false),
        ("--dp-lr", false),
        ("--sample-rate", false),
        ("--dp-steps", false),
        ("--grad-clip", false),
        ("--dp-dropout", false),
        ("--dp-no-dropout", false),
        ("--dp-weight-decay", DpWeightDecay != 0),
        ("--dp-freeze-embeddings", DpFreezeEmbeddings),
        ("--dp-precondition", DpPrecondition),
        ("--dp-precondition-floor", DpPreconditionFloor != 0.1),
        ("--dp-precondition-after-noise", DpPreconditionAfterNoise),
        ("--dp-precondition-split", DpPreconditionSplit != 1),
        ("--dp-precondition-per-tensor", DpPreconditionPerTensor),
        ("--dp-subspace", DpSubspace != 0),
        ("--dp-subspace-sentences", DpSubspaceSentences != 1000),
        ("--dp-subspace-refresh", DpSubspaceRefresh != 0),
        ("--accountant", PldAccounting),
        ("--dp-noise", DpDistributedNoise),
        ("--dp-noise-shares", DpNoiseShares is not null),
        ("--adaptive-clip", AdaptiveClipQuantile != 0),
        ("--clip-lr", ClipLearningRate != DefaultClipLearningRate),
        ("--clip-count-noise", ClipCountNoise is not null),
        ("--public-mix", PublicMix != 0),
        ("--public-mix-until", PublicMixUntil != 0),
        ("--server-noise-correction", ServerNoiseCorrection),
        ("--server-noise-floor", ServerNoiseFloor != 1),
        ("--site-noise", SiteNoiseMultiplier != 0),
    ];

    /// <summary>Whether <paramref name="option"/> was given: named in <see cref="GivenOptions"/>, or <paramref name="changed"/> from its default.</summary>
    private bool Given(string option, bool changed) => changed || GivenOptions.Contains(option);

    /// <summary>The model configuration (a file is read once).</summary>
    /// <exception cref="ArgumentException">--config is neither tiny, default nor a valid configuration file.</exception>
    public TaggerConfig Config
    {
        get
        {
            if (_config is null || !ReferenceEquals(_configSource, ConfigName))
            {
                try
                {
                    _config = TaggerConfig.Resolve(ConfigName);
                }
                catch (InvalidDataException ex)
                {
                    throw new ArgumentException($"--config {ex.Message}", ex);
                }

                _configSource = ConfigName;
            }

            return _config;
        }
    }

    /// <summary>DP-SGD steps per site per round actually taken.</summary>
    public int EffectiveDpStepsPerRound => DpStepsPerRound > 0 ? DpStepsPerRound : LocalEpochs * (int)DpSgdOptions.StepsPerEpoch(SampleRate);

    /// <summary>The skewed shares actually used.</summary>
    public IReadOnlyList<double> EffectiveSkewShares()
    {
        if (SkewShares.Count > 0)
        {
            return SkewShares;
        }

        if (Sites == 3)
        {
            return [0.6, 0.3, 0.1];
        }

        double[] raw = [.. Enumerable.Range(0, Sites).Select(i => Math.Pow(0.5, i))];
        double sum = raw.Sum();
        return [.. raw.Select(r => r / sum)];
    }

    /// <summary>Checks the options; the message names the option that is wrong.</summary>
    /// <exception cref="ArgumentException">An option is out of range or inconsistent.</exception>
    public void Validate()
    {
        foreach ((string? value, string option) in new[] { (WarmStartDirectory, "--warm-start"), (WarmStartCache, "--warm-start-cache"), (DistillTeacherDirectory, "--distill-teacher") })
        {
            if (value is not null && string.IsNullOrWhiteSpace(value))
            {
                // .NET's own "The value cannot be an empty string. (Parameter 'path')" named no option.
                throw new ArgumentException($"{option} is blank; give a path, or leave {option} out.");
            }
        }

        _ = Config;
        if (TorchRuntime.ThreadsProblem(Threads) is { } threadsProblem)
        {
            // libtorch starts every thread it is asked for: 100000 ignored SIGTERM and loaded the machine for minutes.
            throw new ArgumentException(threadsProblem);
        }

        if (Split == ExperimentSplit.ByCorpus)
        {
            if (Corpora.Count < 2)
            {
                throw new ArgumentException("--split by-corpus needs --corpora DIR1,DIR2,… with at least two corpus folders (one per site).");
            }

            if (Sites != Corpora.Count)
            {
                throw new ArgumentException($"--split by-corpus gives each site one corpus: --sites {Sites} but {Corpora.Count} corpora.");
            }
        }
        else
        {
            if (string.IsNullOrWhiteSpace(DataDirectory))
            {
                throw new ArgumentException($"--split {Split.ToString().ToLowerInvariant()} needs --data DIR (a folder with train.tsv, dev.tsv, test.tsv).");
            }

            if (Sites < 2)
            {
                throw new ArgumentException($"--sites must be at least 2, not {Sites}.");
            }

            if (Sites > MaxSites)
            {
                // Every site trains its own model in this process, one after another; far more sites than sentences is a typo.
                throw new ArgumentException($"--sites must be at most {MaxSites}, not {Sites}: every site trains in this process, one after another.");
            }
        }

        if (Split == ExperimentSplit.Skewed)
        {
            IReadOnlyList<double> shares = EffectiveSkewShares();
            if (shares.Count != Sites || shares.Any(s => !(s > 0)) || Math.Abs(shares.Sum() - 1) > 1e-6)
            {
                throw new ArgumentException($"--skew needs {Sites} positive shares summing to 1; got {string.Join(",", shares.Select(s => s.ToString(CultureInfo.InvariantCulture)))}.");
            }
        }

        if (Epsilons.Count == 0 && DpOnlyOptions().FirstOrDefault(o => Given(o.Option, o.Changed)).Option is string dpOption)
        {
            // It was ignored: the run went ahead without the DP arms the option tunes (or, for --dp-only, without any arm).
            throw new ArgumentException($"{dpOption} only matters for the DP arms, but --epsilon none runs none: give --epsilon, or leave {dpOption} out.");
        }

        Positive(Seeds, "--seeds");
        Positive(FirstSeed, "--first-seed");
        if ((long)FirstSeed + Seeds - 1 > int.MaxValue)
        {
            // The seeds run FirstSeed .. FirstSeed + Seeds - 1: past int.MaxValue the loop overflowed and ran none ("No arm ran.").
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"--first-seed {FirstSeed} with --seeds {Seeds} runs seeds up to {(long)FirstSeed + Seeds - 1}, past the largest seed {int.MaxValue}; give a smaller --first-seed or fewer --seeds."));
        }

        Positive(Rounds, "--rounds");
        Positive(LocalEpochs, "--local-epochs");
        Positive(BatchSize, "--batch-size");
        if (DpStepsPerRound < 0)
        {
            throw new ArgumentException("--dp-steps must be 0 (LocalEpochs × round(1/q)) or positive.");
        }

        if (!(ServerWeightAverage >= 0 && ServerWeightAverage < 1))
        {
            throw new ArgumentException($"--server-ema must be in [0, 1) (0 = off), got {ServerWeightAverage.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (ServerAverageFrom < 0 || ServerAverageFrom > Rounds)
        {
            throw new ArgumentException($"--server-average-from must be a round in [1, --rounds = {Rounds}] (0 = off), got {ServerAverageFrom}.");
        }

        if (ServerAverageFrom > 0 && ServerWeightAverage > 0)
        {
            throw new ArgumentException("--server-average-from and --server-ema each choose the reported model; give one of them.");
        }

        if (!(PublicMix >= 0 && double.IsFinite(PublicMix)))
        {
            throw new ArgumentException($"--public-mix must be a finite weight >= 0 (0 = off), got {PublicMix.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (PublicMix > 0 && WarmStartDirectory is null)
        {
            throw new ArgumentException("--public-mix needs the public corpus of --warm-start.");
        }

        if (PublicMixUntil < 0 || PublicMixUntil > Rounds)
        {
            throw new ArgumentException($"--public-mix-until must be a round in [1, --rounds = {Rounds}] (0 = --rounds), got {PublicMixUntil}.");
        }

        if (DpNoiseShares is int k && (!DpDistributedNoise || k < 2 || k > Sites))
        {
            throw new ArgumentException(DpDistributedNoise
                ? $"--dp-noise-shares must be from 2 to the {Sites} sites (any sum of k sites' shares carries σ), got {k}."
                : $"--dp-noise-shares {k} needs --dp-noise distributed (with local noise every site adds the whole σ).");
        }

        if (DpDistributedNoise && DpStepsPerRound != 1)
        {
            throw new ArgumentException("--dp-noise distributed needs --dp-steps 1: a round's sum is one DP-SGD step over every site's data only when each site takes one step from the global model (with several local steps a site's intermediate models carry only its own share of the noise).");
        }

        if (!(AdaptiveClipQuantile >= 0 && AdaptiveClipQuantile < 1))
        {
            throw new ArgumentException($"--adaptive-clip must be the target fraction of unclipped examples in (0, 1) (0 = a fixed clip), got {AdaptiveClipQuantile.ToString(CultureInfo.InvariantCulture)}.");
        }

        PositiveFinite(ClipLearningRate, "--clip-lr");
        if (ClipCountNoise is double countNoise)
        {
            PositiveFinite(countNoise, "--clip-count-noise");
        }

        if (AdaptiveClipQuantile == 0 && (Given("--clip-lr", ClipLearningRate != DefaultClipLearningRate) || Given("--clip-count-noise", ClipCountNoise is not null)))
        {
            throw new ArgumentException("--clip-lr and --clip-count-noise refine --adaptive-clip: add it.");
        }

        if (AdaptiveClipQuantile > 0 && EffectiveDpStepsPerRound != 1)
        {
            throw new ArgumentException("--adaptive-clip updates C once per round from one DP-SGD step's unclipped count: it needs --dp-steps 1.");
        }

        if (AdaptiveClipQuantile > 0 && Epsilons.Count == 0)
        {
            throw new ArgumentException("--adaptive-clip adapts the DP-SGD clip: it needs --epsilon.");
        }

        if (MaxTrainSentences < 0 || MaxEvalSentences < 0)
        {
            throw new ArgumentException("--max-sentences and --max-eval-sentences must be 0 (all) or positive.");
        }

        foreach (double e in Epsilons)
        {
            if (EpsilonText.Problem("--epsilon", e, Delta) is string badEpsilon)
            {
                throw new ArgumentException(badEpsilon);
            }
        }

        PositiveFloat32(LearningRate, "--lr");
        PositiveFloat32(DpLearningRate, "--dp-lr");
        if (!(DpWeightDecay >= 0 && DpLearningRate * DpWeightDecay < 1))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"--dp-weight-decay must be 0 or positive with --dp-lr × --dp-weight-decay below 1 (each step scales the weights by 1 − lr·λ); got λ = {DpWeightDecay:G4} at lr {DpLearningRate:G4}."));
        }

        PositiveFloat32(GradClip, "--grad-clip");
        if (!(LearningRateDecay >= 0) || double.IsInfinity(LearningRateDecay))
        {
            throw new ArgumentException("--lr-decay must be 0 or positive.");
        }

        PositiveFinite(UpdateClip, "--update-clip");
        PositiveFinite(ServerLearningRate, "--server-lr");
        if (ServerNoiseCorrection && ServerOptimizer.Kind != ServerOptimizerKind.Adam)
        {
            throw new ArgumentException("--server-noise-correction corrects Adam's second moment: it needs --server-optimizer adam.");
        }

        if (ServerNoiseCorrection && LearningRateDecay > 0)
        {
            throw new ArgumentException("--server-noise-correction computes the noise variance from a constant --dp-lr: it cannot be combined with --lr-decay.");
        }

        if (!(ServerKalman > 0 && ServerKalman <= 1))
        {
            throw new ArgumentException($"--server-kalman must be a weight κ in (0, 1] (1 = off), got {ServerKalman.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (ServerKalman < 1 && ServerNoiseCorrection)
        {
            throw new ArgumentException("--server-noise-correction subtracts the variance of one round's noise; after --server-kalman the update carries κ / (2 − κ) of it: give one of them.");
        }

        IReadOnlyList<string> serverProblems = ServerOptimizer.Validate(ServerOptimizerOptions.CommandLineOption);
        if (serverProblems.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", serverProblems));
        }

        if ((Given("--dp-precondition-after-noise", DpPreconditionAfterNoise) || Given("--dp-precondition-per-tensor", DpPreconditionPerTensor) || Given("--dp-precondition-split", DpPreconditionSplit != 1)) && !DpPrecondition)
        {
            throw new ArgumentException("--dp-precondition-after-noise, --dp-precondition-per-tensor and --dp-precondition-split refine --dp-precondition: add it.");
        }

        if (!(DpPreconditionSplit >= 0 && DpPreconditionSplit <= 1))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"--dp-precondition-split must be in [0, 1] (the share of the factors' exponent applied before clipping), not {DpPreconditionSplit}."));
        }

        if (DpPreconditionAfterNoise && DpPreconditionSplit != 1)
        {
            throw new ArgumentException("--dp-precondition-after-noise is --dp-precondition-split 0: give one of them.");
        }

        if (DpPrecondition && WarmStartDirectory is null)
        {
            throw new ArgumentException("--dp-precondition estimates the preconditioner on public data: it needs --warm-start DIR.");
        }

        if (DpSubspace < 0 || DpSubspaceRefresh < 0)
        {
            throw new ArgumentException("--dp-subspace and --dp-subspace-refresh must be 0 (off) or positive.");
        }

        if (DpSubspace > 0 && WarmStartDirectory is null)
        {
            throw new ArgumentException("--dp-subspace takes the gradient subspace from public data: it needs --warm-start DIR.");
        }

        if (DpSubspace > 0 && DpSubspaceSentences < DpSubspace)
        {
            throw new ArgumentException($"--dp-subspace-sentences ({DpSubspaceSentences}) must be at least --dp-subspace ({DpSubspace}).");
        }

        if (!(DpPreconditionFloor > 0 && DpPreconditionFloor <= 1))
        {
            throw new ArgumentException($"--dp-precondition-floor must be in (0, 1], got {DpPreconditionFloor.ToString(CultureInfo.InvariantCulture)}.");
        }

        ValidateRefinements();
        if (!(SampleRate > 0 && SampleRate <= 1))
        {
            throw new ArgumentException($"--sample-rate must be in (0, 1]; got {SampleRate.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (DpSgdOptions.StepsProblem(SampleRate, LocalEpochs, DpStepsPerRound) is string tooManySteps)
        {
            throw new ArgumentException("--sample-rate: " + tooManySteps);
        }

        if (!(Delta > 0 && Delta < 1))
        {
            throw new ArgumentException($"--delta must be in (0, 1); got {Delta.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (!(SiteNoiseMultiplier >= 0) || double.IsInfinity(SiteNoiseMultiplier))
        {
            throw new ArgumentException("--site-noise must be 0 (off) or positive.");
        }

        if (WarmStartDirectory is not null)
        {
            if (WarmStartEpochs < 0 || (WarmStartEpochs == 0 && !DpPrecondition))
            {
                throw new ArgumentException($"--warm-start-epochs must be positive (0 only with --dp-precondition: the public corpus then feeds the preconditioner alone), got {WarmStartEpochs}.");
            }

            string warm = Path.GetFullPath(WarmStartDirectory);
            IEnumerable<string> evaluated = Split == ExperimentSplit.ByCorpus ? Corpora : [DataDirectory!];
            if (evaluated.Any(d => string.Equals(Path.GetFullPath(d).TrimEnd('/'), warm.TrimEnd('/'), StringComparison.Ordinal)))
            {
                throw new ArgumentException("--warm-start must be a public corpus other than the evaluated one(s).");
            }
        }

        ValidatePretraining();
        ValidateDistillation();

        if (!RunNonPrivateArms && Epsilons.Count == 0)
        {
            throw new ArgumentException("--dp-only needs at least one --epsilon.");
        }

        if (PooledOnly && (Epsilons.Count > 0 || !RunNonPrivateArms || !RunCentralizedArms))
        {
            throw new ArgumentException("--pooled-only runs the pooled arm alone: it takes --epsilon none and neither --dp-only nor --federated-only.");
        }
    }

    /// <summary>
    /// An option that only refines another one, given without it: it was silently ignored (the run went ahead without
    /// the feature the user tuned), so it is an error naming the option, its value and the option that enables it.
    /// </summary>
    private void ValidateRefinements()
    {
        if (WarmStartDirectory is null)
        {
            if (Given("--warm-start-epochs", WarmStartEpochs != 3))
            {
                throw new ArgumentException($"--warm-start-epochs {WarmStartEpochs} sets the epochs of the public warm start, but no --warm-start DIR is given: add it, or leave --warm-start-epochs out.");
            }

            if (WarmStartCache is not null)
            {
                throw new ArgumentException($"--warm-start-cache {WarmStartCache} keeps the models of the public warm start, but no --warm-start DIR is given: add it, or leave --warm-start-cache out.");
            }

            if (Given("--warm-start-splits", WarmStartAllSplits))
            {
                throw new ArgumentException($"--warm-start-splits {(WarmStartAllSplits ? "all" : "train")} chooses the splits of the public warm start's corpus, but no --warm-start DIR is given: add it, or leave --warm-start-splits out.");
            }
        }

        if (DpSubspace == 0)
        {
            if (Given("--dp-subspace-sentences", DpSubspaceSentences != 1000))
            {
                throw new ArgumentException($"--dp-subspace-sentences {DpSubspaceSentences} sets the public sentences of projected DP-SGD, but --dp-subspace is 0 (off): add --dp-subspace K, or leave --dp-subspace-sentences out.");
            }

            if (Given("--dp-subspace-refresh", DpSubspaceRefresh != 0))
            {
                throw new ArgumentException($"--dp-subspace-refresh {DpSubspaceRefresh} recomputes the subspace of projected DP-SGD, but --dp-subspace is 0 (off): add --dp-subspace K, or leave --dp-subspace-refresh out.");
            }
        }

        if (!DpPrecondition && Given("--dp-precondition-floor", DpPreconditionFloor != 0.1))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"--dp-precondition-floor {DpPreconditionFloor} sets the floor of the DP-SGD preconditioner, but --dp-precondition is not given: add it, or leave --dp-precondition-floor out."));
        }

        if (PublicMix == 0 && Given("--public-mix-until", PublicMixUntil != 0))
        {
            throw new ArgumentException($"--public-mix-until {PublicMixUntil} sets the last round of the public server steps, but --public-mix is 0 (off): add --public-mix WEIGHT, or leave --public-mix-until out.");
        }

        if (!ServerNoiseCorrection && Given("--server-noise-floor", ServerNoiseFloor != 1))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"--server-noise-floor {ServerNoiseFloor} sets the floor of --server-noise-correction, which is not given: add it, or leave --server-noise-floor out."));
        }

        ServerOptimizerKind kind = ServerOptimizer.Kind;
        if (kind == ServerOptimizerKind.Average && Given("--server-beta1", ServerBeta1 != 0.9))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"--server-beta1 {ServerBeta1} sets the momentum of --server-optimizer momentum or adam, but --server-optimizer is {ServerOptimizerName}: give one of those, or leave --server-beta1 out."));
        }

        if (kind != ServerOptimizerKind.Adam && (Given("--server-beta2", ServerBeta2 != 0.99) || Given("--server-tau", ServerTau != 1e-3)))
        {
            (string option, double value) = Given("--server-beta2", ServerBeta2 != 0.99) ? ("--server-beta2", ServerBeta2) : ("--server-tau", ServerTau);
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"{option} {value} sets a parameter of --server-optimizer adam, but --server-optimizer is {ServerOptimizerName}: give adam, or leave {option} out."));
        }
    }

    private void ValidatePretraining()
    {
        if (PretrainTextDirectories.Count == 0)
        {
            if (Given("--pretrain-epochs", PretrainEpochs != 1))
            {
                throw new ArgumentException("--pretrain-epochs sets the passes over --pretrain-text: add it.");
            }

            return;
        }

        if (WarmStartDirectory is null)
        {
            throw new ArgumentException("--pretrain-text pretrains the encoder of the public warm start: it needs --warm-start DIR.");
        }

        if (PretrainEpochs < 1)
        {
            throw new ArgumentException($"--pretrain-epochs must be at least 1, not {PretrainEpochs}.");
        }

        if (Config.Layers != 1)
        {
            throw new ArgumentException($"--pretrain-text needs a model with a one-layer BiLSTM (this --config has {Config.Layers}): in a stacked BiLSTM the upper forward direction reads states that have seen the token it predicts.");
        }

        if (Config.Encoder.Length > 0)
        {
            throw new ArgumentException($"--pretrain-text cannot pretrain a model with the pretrained encoder ({Config.Encoder}): its token vectors have read the whole sentence, so the language-model objective would learn to copy the word it predicts; use a --config without an encoder (tiny, tiny-crf).");
        }

        ValidatePublicText(PretrainTextDirectories, "--pretrain-text");
    }

    private void ValidateDistillation()
    {
        if (DistillTextDirectories.Count == 0)
        {
            if (Given("--distill-epochs", DistillEpochs != 3) || Given("--distill-lr", DistillLearningRate != 0.003) || DistillTeacherDirectory is not null)
            {
                throw new ArgumentException("--distill-epochs, --distill-lr and --distill-teacher set the student's training on --distill-text: add it.");
            }

            return;
        }

        if (DistillEpochs < 1)
        {
            throw new ArgumentException($"--distill-epochs must be at least 1, not {DistillEpochs}.");
        }

        PositiveFinite(DistillLearningRate, "--distill-lr");
        if (DistillTeacherDirectory is not null && !File.Exists(Path.Combine(DistillTeacherDirectory, "model.json")))
        {
            throw new ArgumentException($"--distill-teacher: {DistillTeacherDirectory} holds no tagger model (model.json), e.g. <out>/models/seed1-dp-eps8 of an earlier run.");
        }

        if (PooledOnly)
        {
            throw new ArgumentException("--distill-text distils the federated arms' models: not with --pooled-only.");
        }

        ValidatePublicText(DistillTextDirectories, "--distill-text");
    }

    /// <summary>Public text folders (<paramref name="option"/>): each exists, is named once and is not an evaluated corpus.</summary>
    private void ValidatePublicText(IReadOnlyList<string> directories, string option)
    {
        IEnumerable<string> evaluated = Split == ExperimentSplit.ByCorpus ? Corpora : DataDirectory is null ? [] : [DataDirectory];
        var evaluatedPaths = evaluated.Select(CanonicalDirectory).ToHashSet(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string directory in directories)
        {
            if (string.IsNullOrWhiteSpace(directory))
            {
                throw new ArgumentException($"{option} has an empty folder name (give DIR1,DIR2,...).");
            }

            if (!Directory.Exists(directory))
            {
                throw new ArgumentException($"{option}: folder {directory} does not exist.");
            }

            string canonical = CanonicalDirectory(directory);
            if (evaluatedPaths.Contains(canonical))
            {
                throw new ArgumentException($"{option} must not include the evaluated corpus ({directory}): its dev and test text would leak into the model.");
            }

            if (!seen.Add(canonical))
            {
                throw new ArgumentException($"{option} names {directory} twice.");
            }
        }
    }

    /// <summary>The full path of a folder with symbolic links resolved and no trailing separator, to compare folders.</summary>
    internal static string CanonicalDirectory(string directory)
    {
        string full = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar);
        try
        {
            return new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName.TrimEnd(Path.DirectorySeparatorChar) ?? full;
        }
        catch (IOException)
        {
            return full;
        }
    }

    private static void Positive(int value, string name)
    {
        if (value < 1)
        {
            throw new ArgumentException($"{name} must be at least 1, not {value}.");
        }
    }

    /// <summary>
    /// A value the tagger hands libtorch as a 32-bit float scalar (a learning rate, the clip C): beyond
    /// <see cref="float.MaxValue"/> libtorch refuses the conversion in the middle of training.
    /// </summary>
    private static void PositiveFloat32(double value, string name)
    {
        PositiveFinite(value, name);
        if (Float32Scalar.IsTooLarge(value))
        {
            throw new ArgumentException(Float32Scalar.TooLarge(name, value));
        }
    }

    private static void PositiveFinite(double value, string name)
    {
        if (!(value > 0) || double.IsInfinity(value))
        {
            throw new ArgumentException($"{name} must be finite and > 0; got {value.ToString(CultureInfo.InvariantCulture)}.");
        }
    }
}
