"""Every family survives a round trip through MLflow: logged, reloaded, same outputs, on the CPU."""

from __future__ import annotations

import time

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow.entities import LoggedModelStatus

from tests.models.model_helpers import SAMPLE_FAMILIES, make_batch, variant_params
from vae_lab.config import get_settings
from vae_lab.models import ModelConfig, build_model
from vae_lab.tracking import Tracker, load_model, log_model


@pytest.fixture
def tracked(lab):
    tracker = Tracker(get_settings())
    experiment = tracker.ensure_experiment("logging")
    run_id = tracker.start_run(experiment, "roundtrip")
    yield tracker, experiment, run_id
    tracker.end_run(run_id)


@pytest.mark.parametrize("name, head", variant_params(fast=SAMPLE_FAMILIES))
def test_logged_model_reloads_with_identical_outputs(tracked, name, head):
    tracker, experiment, run_id = tracked
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture=name, output=head, grid=7, latent_dim=3)).eval()
    batch = make_batch(model)
    started = time.perf_counter()
    ref = log_model(tracker, run_id, experiment, model, step=3)
    assert time.perf_counter() - started < 10  # no pip inference (that alone costs ~12 s)
    reloaded = load_model(tracker, ref.model_id)
    with torch.no_grad():
        before, after = model.forward_batch(batch), reloaded.forward_batch(batch)
    assert torch.equal(before.recon, after.recon) and torch.equal(before.mu, after.mu)
    assert torch.equal(model.predict_grid(before), reloaded.predict_grid(after))
    assert reloaded.config == model.config


def test_a_model_on_another_dtype_is_logged_portable_and_loads_on_the_cpu_with_plain_mlflow(tracked):
    """Trained in bf16 (or on a GPU), logged as float32 on the CPU: any machine can load it."""
    tracker, experiment, run_id = tracked
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture="fc", output="categorical", grid=7, latent_dim=3)).to(torch.bfloat16)
    ref = log_model(tracker, run_id, experiment, model)
    assert next(model.parameters()).dtype == torch.bfloat16  # the caller's model is left as it was
    mlflow.set_tracking_uri(tracker.uri)
    reloaded = mlflow.pytorch.load_model(ref.uri, map_location="cpu")
    weights = next(reloaded.parameters())
    assert weights.dtype == torch.float32 and weights.device.type == "cpu"
    grid = torch.zeros(1, 7, 7, 7, dtype=torch.uint8)
    grid[0, 3, 3, 3] = 2
    assert reloaded.reconstruct(grid).shape == (1, 7, 7, 7)


def test_the_logged_model_is_an_output_of_its_run(tracked):
    tracker, experiment, run_id = tracked
    model = build_model(ModelConfig(architecture="fc", grid=7, latent_dim=2))
    ref = log_model(tracker, run_id, experiment, model, step=4)
    logged = tracker.client.get_logged_model(ref.model_id)
    assert logged.source_run_id == run_id and logged.status == LoggedModelStatus.READY
    outputs = tracker.client.get_run(run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(ref.model_id, 4)]


def test_requirements_pin_what_is_installed_and_leave_out_what_is_not(monkeypatch):
    """A lean GPU machine holds mlflow-skinny and no pyarrow: its models still log, pinning
    mlflow at mlflow-skinny's release and leaving pyarrow out."""
    import importlib.metadata

    from vae_lab.tracking.models import RUNTIME_PACKAGES, model_requirements

    real = importlib.metadata.version

    def lean(name):
        if name in ("pyarrow", "mlflow"):
            raise importlib.metadata.PackageNotFoundError(name)
        return "3.17.2" if name == "mlflow-skinny" else real(name)

    assert {pin.split("==")[0] for pin in model_requirements()} == set(RUNTIME_PACKAGES)
    monkeypatch.setattr(importlib.metadata, "version", lean)
    pins = model_requirements()
    assert "mlflow==3.17.2" in pins
    assert not any(pin.startswith("pyarrow") for pin in pins)
    assert f"torch=={real('torch').split('+')[0]}" in pins
