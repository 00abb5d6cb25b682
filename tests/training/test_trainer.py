import pytest
import torch

from tests.conftest import sparse_grids
from vae_lab.errors import VaeLabError
from vae_lab.models import ModelConfig, build_model
from vae_lab.runtime import Runtime
from vae_lab.training import Callback, NonFiniteError, TensorData, TrainConfig, Trainer, validate

METRICS = {
    "train_loss",
    "val_loss",
    "train_recon",
    "val_recon",
    "train_kl",
    "val_kl",
    "beta",
    "val_f1",
    "val_occupancy_precision",
    "val_occupancy_recall",
    "val_occupancy_iou",
    "val_exact_match",
    "val_active_units",
    "val_kl_dim_max",
    "val_kl_dims_used",
    "val_tradeoff",
    "train_time_s",
    "val_time_s",
}
CPU = Runtime(device="cpu")


def tiny_data(n=48, seed=0, edge=5):
    return TensorData.from_arrays(sparse_grids(n, edge=edge, seed=seed, max_cells=3), None)


def fc(edge=5, latent_dim=2, output=None):
    torch.manual_seed(0)
    return build_model(ModelConfig(architecture="fc", latent_dim=latent_dim, grid=edge, output=output))


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append("start")

    def on_epoch_end(self, trainer, epoch, metrics):
        self.events.append(("epoch", epoch, dict(metrics)))

    def on_fit_end(self, trainer, result):
        self.events.append("end")


@pytest.mark.slow  # several epochs of real training: `make test`, not the edit loop
def test_every_epoch_reports_the_named_metrics_and_loss_falls():
    data = tiny_data()
    recorder = Recorder()
    result = Trainer(
        fc(), TrainConfig(epochs=6, batch_size=16, learning_rate=3e-3, beta=0.1), [recorder], runtime=CPU
    ).fit(data, data)
    assert recorder.events[0] == "start" and recorder.events[-1] == "end"
    epochs = [e for e in recorder.events if isinstance(e, tuple)]
    assert len(epochs) == 6
    assert all(METRICS <= set(e[2]) for e in epochs)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert all(0.0 <= h["val_f1"] <= 1.0 and 0.0 <= h["val_tradeoff"] <= 1.0 for h in result.history)


def test_early_stopping_after_patience_epochs_without_improvement():
    data = tiny_data()
    # lr ~0 means val_loss never improves after the first epoch.
    config = TrainConfig(epochs=30, patience=2, learning_rate=1e-12, optimizer="sgd")
    result = Trainer(fc(), config, runtime=CPU).fit(data, data)
    assert len(result.history) == 3
    assert result.stopped_early


def test_early_stopping_can_follow_a_higher_is_better_metric():
    data = tiny_data()
    config = TrainConfig(epochs=30, patience=2, learning_rate=1e-12, optimizer="sgd", early_stopping_metric="val_f1")
    result = Trainer(fc(), config, runtime=CPU).fit(data, data)
    assert len(result.history) == 3 and result.stopped_early


@pytest.mark.slow  # several epochs of real training: `make test`, not the edit loop
def test_warm_up_epochs_never_spend_patience():
    data = tiny_data()
    config = TrainConfig(epochs=30, patience=2, learning_rate=1e-12, optimizer="sgd", kl_warmup_epochs=5)
    result = Trainer(fc(), config, runtime=CPU).fit(data, data)
    assert len(result.history) == 5 + 3  # patience counts from the end of the warm-up
    assert [h["beta"] for h in result.history[:3]] == pytest.approx([0.0, 0.2, 0.4])


def test_seeded_fit_is_reproducible():
    data = tiny_data()
    first = Trainer(fc(), TrainConfig(epochs=2, batch_size=16, seed=3), runtime=CPU).fit(data, data).history
    second = Trainer(fc(), TrainConfig(epochs=2, batch_size=16, seed=3), runtime=CPU).fit(data, data).history
    assert [h["val_loss"] for h in first] == [h["val_loss"] for h in second]


def test_best_epoch_weights_are_restored_and_validate_reproduces_them():
    data = tiny_data()
    config = TrainConfig(epochs=4, batch_size=16, select_metric="val_loss", select_mode="min")
    model = fc()
    trainer = Trainer(model, config, runtime=CPU)
    result = trainer.fit(data, data)
    best = min(h["val_loss"] for h in result.history)
    assert result.best_metrics["val_loss"] == best
    again = validate(model, data, loss=config.loss_settings(), beta=config.beta, weights=trainer.weights)
    assert again.scores["loss"] == pytest.approx(best, rel=1e-6)
    assert result.final.scores["f1"] == pytest.approx(result.best_metrics["val_f1"])


@pytest.mark.slow  # seconds of real training, processes or waiting: `make test`, not the edit loop
def test_bf16_autocast_on_the_cpu_trains_and_lowers_the_loss():
    data = tiny_data(n=64)
    config = TrainConfig(epochs=4, batch_size=16, learning_rate=3e-3, beta=0.1, loss="weighted_ce")
    result = Trainer(fc(output="categorical"), config, runtime=Runtime(device="cpu", precision="bf16")).fit(data, data)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert all(torch.isfinite(torch.tensor(h["val_loss"])) for h in result.history)


def test_the_trainer_flushes_subnormal_floats_on_the_cpu():
    # Subnormals made conv_pool train 2-4x slower after its first epoch (benchmarks/RESULTS.md).
    torch.set_flush_denormal(False)
    assert (torch.tensor([1e-39]) * 1.0).item() != 0.0
    Trainer(fc(), TrainConfig(), runtime=CPU)
    assert (torch.tensor([1e-39]) * 1.0).item() == 0.0


def test_unavailable_cuda_is_a_one_line_user_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(VaeLabError, match="no CUDA GPU"):
        Trainer(fc(), TrainConfig(), runtime=Runtime(device="cuda"))


def test_a_nan_loss_fails_the_fit_naming_the_epoch():
    class Poison(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 1:
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    data = tiny_data()
    with pytest.raises(NonFiniteError) as caught:
        Trainer(fc(), TrainConfig(epochs=5, batch_size=16), [Poison()], runtime=CPU).fit(data, data)
    assert caught.value.epoch == 2 and "NaN" in str(caught.value)


def test_max_grad_norm_bounds_each_step():
    """SGD at learning rate 1 moves the weights by exactly the gradient: with clipping, by no more
    than the norm asked for; without it, by far more."""

    def first_step_length(max_grad_norm):
        model = fc()
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        config = TrainConfig(epochs=1, batch_size=48, optimizer="sgd", learning_rate=1.0, max_grad_norm=max_grad_norm)
        trainer = Trainer(model, config, runtime=CPU)
        trainer.train_epoch(tiny_data(), beta=1.0)
        return (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()

    assert first_step_length(0.0) > 1.0
    assert first_step_length(0.05) == pytest.approx(0.05, rel=1e-3)


def test_callback_can_stop_training():
    class StopAfterTwo(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            trainer.should_stop = epoch >= 1

    data = tiny_data()
    result = Trainer(fc(), TrainConfig(epochs=10), [StopAfterTwo()], runtime=CPU).fit(data, data)
    assert len(result.history) == 2


def test_latent_metric_as_objective_is_measured_every_epoch():
    grids = sparse_grids(60, edge=5, seed=1, max_cells=3)
    labels = (grids.reshape(60, -1) > 0).sum(1) % 2
    data = TensorData.from_arrays(grids, labels)
    config = TrainConfig(epochs=2, batch_size=16, select_metric="val_knn_accuracy", select_mode="max")
    result = Trainer(fc(latent_dim=3), config, runtime=CPU).fit(data, data)
    assert all(0.0 <= h["val_knn_accuracy"] <= 1.0 for h in result.history)
    assert "val_silhouette" in result.best_metrics


def test_rotation_augmentation_moves_grid_and_points_together():
    import numpy as np

    from vae_lab.data.sparse import to_sparse
    from vae_lab.data.synth import cube_rotations
    from vae_lab.training.augment import Rotations

    assert len(cube_rotations()) == 24 and len({m.tobytes() for m in cube_rotations()}) == 24
    grids = sparse_grids(16, edge=5, seed=4, max_cells=4)
    data = TensorData.from_arrays(grids, None, sparse_points=6)
    rotated = Rotations(5, torch.device("cpu"), seed=1)(data.batch(slice(None)))
    assert torch.equal((rotated.grid > 0).sum((1, 2, 3)), (data.grid > 0).sum((1, 2, 3)))  # cells kept
    assert not torch.equal(rotated.grid, data.grid)
    expected, _ = to_sparse(rotated.grid.numpy(), max_points=6)  # the rotated grid's own point set
    for b in range(16):
        mine = {tuple(np.round(p, 4)) for p, m in zip(rotated.points[b].numpy(), rotated.mask[b].numpy()) if m}
        theirs = {tuple(np.round(p, 4)) for p in expected[b] if p.any()}
        assert mine == theirs


@pytest.mark.slow  # several epochs of real training: `make test`, not the edit loop
def test_a_fit_with_rotations_trains_and_validates_on_the_data_as_it_is():
    data = tiny_data(n=64)
    result = Trainer(fc(), TrainConfig(epochs=3, batch_size=16, augment="rotations"), runtime=CPU).fit(data, data)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
