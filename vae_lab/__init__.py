"""vae-lab: tune and compare variational autoencoders on sparse 3D voxel data with MLflow and Optuna."""

__version__ = "0.1.0"
