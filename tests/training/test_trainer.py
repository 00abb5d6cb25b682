import torch

from tests.conftest import sparse_grids
from vae_lab.models import ModelConfig, build_model
from vae_lab.training import Callback, TensorData, TrainConfig, Trainer

METRICS = {"train_loss", "val_loss", "train_recon", "val_recon", "train_kl", "val_kl", "val_f1", "val_tradeoff", "train_time_s", "val_time_s"}


def tiny_data(n=48, seed=0, edge=5):
    return TensorData.from_arrays(sparse_grids(n, edge=edge, seed=seed, max_cells=3), None)


def fc(edge=5, latent_dim=2):
    torch.manual_seed(0)
    return build_model(ModelConfig(architecture="fc", latent_dim=latent_dim, grid=edge))


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append("start")

    def on_epoch_end(self, trainer, epoch, metrics):
        self.events.append(("epoch", epoch, dict(metrics)))

    def on_fit_end(self, trainer, result):
        self.events.append("end")


def test_every_epoch_reports_the_named_metrics_and_loss_falls():
    data = tiny_data()
    recorder = Recorder()
    result = Trainer(fc(), TrainConfig(epochs=6, batch_size=16, learning_rate=3e-3, beta=0.1), [recorder]).fit(data, data)
    assert recorder.events[0] == "start" and recorder.events[-1] == "end"
    epochs = [e for e in recorder.events if isinstance(e, tuple)]
    assert len(epochs) == 6
    assert all(set(e[2]) == METRICS for e in epochs)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert all(0.0 <= h["val_f1"] <= 1.0 and 0.0 <= h["val_tradeoff"] <= 1.0 for h in result.history)


def test_early_stopping_after_patience_epochs_without_improvement():
    data = tiny_data()
    # lr 0 means val_loss never improves after the first epoch.
    config = TrainConfig(epochs=30, patience=2, learning_rate=1e-12, optimizer="sgd")
    result = Trainer(fc(), config).fit(data, data)
    assert len(result.history) == 3
    assert result.stopped_early


def test_early_stopping_can_follow_a_higher_is_better_metric():
    data = tiny_data()
    config = TrainConfig(epochs=30, patience=2, learning_rate=1e-12, optimizer="sgd", early_stopping_metric="val_f1")
    result = Trainer(fc(), config).fit(data, data)
    assert len(result.history) == 3 and result.stopped_early


def test_seeded_fit_is_reproducible():
    data = tiny_data()
    first = Trainer(fc(), TrainConfig(epochs=2, batch_size=16, seed=3)).fit(data, data).history
    second = Trainer(fc(), TrainConfig(epochs=2, batch_size=16, seed=3)).fit(data, data).history
    assert [h["val_loss"] for h in first] == [h["val_loss"] for h in second]


def test_best_epoch_weights_are_restored():
    data = tiny_data()
    config = TrainConfig(epochs=4, batch_size=16, select_metric="val_loss", select_mode="min")
    model = fc()
    trainer = Trainer(model, config)
    result = trainer.fit(data, data)
    best = min(h["val_loss"] for h in result.history)
    assert result.best_metrics["val_loss"] == best
    from vae_lab.training import evaluate

    assert abs(evaluate(model, data, loss="mse", beta=config.beta, weights=trainer.weights)["loss"] - best) < 1e-4


def test_log_class_weights_boost_rare_classes():
    from vae_lab.training.losses import class_weights

    grid = torch.zeros(1000, dtype=torch.uint8)
    grid[:10], grid[10:12] = 1, 4
    weights = class_weights(grid, "log")
    assert weights[0] == 1.0 and weights[4] > weights[1] > 1.0
    assert class_weights(grid, "none") is None
    assert class_weights(grid, "balanced")[4] > weights[4]


def test_callback_can_stop_training():
    class StopAfterTwo(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            trainer.should_stop = epoch >= 1

    data = tiny_data()
    result = Trainer(fc(), TrainConfig(epochs=10), [StopAfterTwo()]).fit(data, data)
    assert len(result.history) == 2
