-- The MLflow store lives beside the Optuna database on the same server.
CREATE DATABASE mlflow OWNER vae;
