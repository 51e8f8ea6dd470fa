// The smoke test trains with TorchSharp (one global random generator): one class at a time, as in the tagger tests.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
