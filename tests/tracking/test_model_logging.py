"""Every family survives a round trip through MLflow: logged, reloaded, same outputs."""

from __future__ import annotations

import time

import mlflow
import mlflow.pytorch
import pytest
import torch

from tests.models.model_helpers import VARIANTS, make_batch
from vae_lab import tracking
from vae_lab.config import get_settings
from vae_lab.models import ModelConfig, build_model


@pytest.fixture
def run_id(lab):
    settings = get_settings()
    tracking.configure_tracking(settings)
    experiment = tracking.ensure_experiment("logging", settings)
    rid = tracking.start_run(experiment, "roundtrip")
    yield rid
    tracking.end_run(rid)


@pytest.mark.parametrize("name, head", VARIANTS, ids=[f"{n}-{h}" for n, h in VARIANTS])
def test_logged_model_reloads_with_identical_outputs(run_id, name, head):
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture=name, output=head, grid=7, latent_dim=3)).eval()
    batch = make_batch(model)
    started = time.perf_counter()
    uri = tracking.log_model(run_id, model)
    assert time.perf_counter() - started < 10  # no pip inference (that alone costs ~12 s)
    reloaded = mlflow.pytorch.load_model(uri).eval()
    with torch.no_grad():
        before, after = model.forward_batch(batch), reloaded.forward_batch(batch)
    assert torch.equal(before.recon, after.recon) and torch.equal(before.mu, after.mu)
    assert torch.equal(model.predict_grid(before), reloaded.predict_grid(after))
    assert reloaded.config == model.config
