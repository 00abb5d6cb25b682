"""One trial: the objective (suggest, fit, log, record), its figures, and the names it writes (provenance)."""
