// The tagger tests run one class at a time: they are CPU-heavy and several measure or stress one thing at a time.
// Each training call has its own generators (TrainingRandomnessTests shows seeded runs stay reproducible in company),
// but the 2-layer nn.LSTM's between-layer dropout still uses libtorch's global generator (docs/tagger.md).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
