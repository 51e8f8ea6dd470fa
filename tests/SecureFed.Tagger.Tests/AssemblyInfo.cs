// The tagger tests run one class at a time: libtorch has one global random generator, which seeded model creation
// (TaggerModel.Create) and training share, so a class training in parallel would make the seeded-weights tests of
// another class flaky. Trainers in one process are safe together (ConcurrentTrainingStressTests runs four at once),
// but only one at a time is reproducible (docs/tagger.md).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
