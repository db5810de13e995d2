// The Api tests start many hosts (in-process factories with Hangfire servers, and real processes); run the classes
// one after another so they do not starve each other on a 2-core CI machine.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
