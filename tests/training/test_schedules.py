"""KL schedules give the expected beta at each epoch."""

import pytest

from vae_lab.training import TrainConfig
from vae_lab.training.schedules import beta_at, settled_epoch


def test_constant_beta_by_default():
    assert [beta_at(e, beta=0.5, epochs=4) for e in range(4)] == [0.5] * 4


def test_linear_warm_up_starts_at_zero_and_reaches_beta():
    betas = [beta_at(e, beta=1.0, epochs=8, warmup_epochs=4) for e in range(8)]
    assert betas == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0])
    assert settled_epoch(warmup_epochs=4) == 4


def test_cyclical_annealing_restarts_each_cycle():
    # 8 epochs, 2 cycles of 4, ramp over the first half of each cycle.
    betas = [beta_at(e, beta=1.0, epochs=8, cycles=2, cycle_ratio=0.5) for e in range(8)]
    assert betas == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0])
    assert settled_epoch(cycles=2) == 0


def test_two_schedules_at_once_are_refused():
    with pytest.raises(ValueError, match="two KL schedules"):
        TrainConfig(kl_warmup_epochs=3, kl_cycles=2)


def test_cosine_learning_rate_warms_up_then_decays_to_zero():
    from vae_lab.training.schedules import learning_rate_at

    rates = [learning_rate_at(step, 100, 1e-3) for step in range(100)]
    assert rates[0] == pytest.approx(0.5e-3) and rates[1] == pytest.approx(1e-3)  # 2 warm-up steps
    assert max(rates) == pytest.approx(1e-3) and rates[-1] < 1e-5
    assert all(a >= b for a, b in zip(rates[2:], rates[3:]))  # never rises after the warm-up
