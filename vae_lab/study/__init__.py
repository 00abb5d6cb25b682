"""Studies: YAML specs, the search space, the per-trial objective and the runner that resumes."""
