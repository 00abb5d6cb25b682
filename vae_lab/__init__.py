"""vae-lab: tune and compare variational autoencoders on sparse 3D voxel data with MLflow and Optuna."""

import os

__version__ = "0.1.0"

# MLflow starts a usage-telemetry thread when it is imported, unless told not to. A lab has no use
# for it (and its machines are often offline), and that thread sets and unsets an environment
# variable while other threads read the environment: under eight workers one of them died of a
# KeyError inside `requests` (benchmarks/RESULTS.md, "Load on the shared stores"). Off unless the
# user says otherwise; set before anything of vae-lab imports mlflow.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
