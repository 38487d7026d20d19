using Xunit;

// The subject backends are shared by every property (one device, one queue): tests run one at a time, and each
// kernel's own Parallel.For keeps both cores busy anyway.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
