"""Studies: what a study is (`design`), one trial (`trial`), reading them back (`reading`), and
running them (`execution`).

Imports run one way: design <- trial <- reading <- execution. Nothing here is imported eagerly,
so `vae_lab.study.design.spec` loads without Optuna's storages or MLflow.
"""
