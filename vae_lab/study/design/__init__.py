"""What a study is, with no MLflow and no storage: the spec, the search space, the sampler and pruner, the plan."""
