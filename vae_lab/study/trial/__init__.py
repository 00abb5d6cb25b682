"""One trial: the objective (suggest, fit, log, record), its figures, the names it writes (provenance), and
the stores and locks it is kept in."""
