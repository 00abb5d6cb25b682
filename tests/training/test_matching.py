"""The set loss's exact slot matching on the device against scipy's Hungarian algorithm."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from vae_lab.losses import _match_slots, _match_slots_on_cpu, _match_slots_on_device


def matched_cost(cost: torch.Tensor, mask: torch.Tensor, slot_of_point: torch.Tensor) -> torch.Tensor:
    picked = cost.gather(1, slot_of_point.unsqueeze(1)).squeeze(1)
    return torch.where(mask, picked, torch.zeros_like(picked)).double().sum(1)


def scipy_optimum(cost: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    best = np.zeros(len(cost))
    for b, (c, m) in enumerate(zip(cost.double().numpy(), mask.numpy())):
        if m.any():
            rows, cols = linear_sum_assignment(c[:, m])
            best[b] = c[:, m][rows, cols].sum()
    return best


@pytest.mark.parametrize("slots, points", [(1, 1), (3, 3), (5, 4), (8, 8), (10, 10), (12, 12)])
def test_device_matching_reaches_scipys_optimum_with_padding(slots, points):
    generator = torch.Generator().manual_seed(slots)
    cost = torch.randn(200, slots, points, generator=generator) * 4
    cost[:50] = cost[:50].round()  # integer costs: many ties between assignments
    mask = torch.rand(200, points, generator=generator) < 0.7
    mask[0], mask[1] = False, True  # an empty sample and a full one
    slot_of_point = _match_slots_on_device(cost, mask)
    for b in range(len(cost)):  # every real point has its own slot; padding points at slot 0
        real = slot_of_point[b][mask[b]].tolist()
        assert len(set(real)) == len(real) and (slot_of_point[b][~mask[b]] == 0).all()
    np.testing.assert_allclose(matched_cost(cost, mask, slot_of_point).numpy(), scipy_optimum(cost, mask), atol=1e-4)


def test_matching_stays_on_the_costs_device_and_falls_back_past_the_device_limit():
    cost, mask = torch.randn(16, 8, 8), torch.rand(16, 8) < 0.8
    assert _match_slots(cost, mask).device == cost.device
    big_cost, big_mask = torch.randn(4, 14, 14), torch.ones(4, 14, dtype=torch.bool)
    assert torch.equal(_match_slots(big_cost, big_mask), _match_slots_on_cpu(big_cost, big_mask))


def test_the_set_loss_is_the_same_whichever_exact_matcher_runs(monkeypatch):
    from vae_lab import losses

    generator = torch.Generator().manual_seed(3)
    edge, slots = 7, 8
    recon = torch.randn(64, slots, 1 + 3 * edge + 4, generator=generator)
    mask = torch.rand(64, slots, generator=generator) < 0.6
    cells = torch.randint(0, edge, (64, slots, 3), generator=generator).float() / (edge - 1)
    onehot = torch.nn.functional.one_hot(torch.randint(0, 4, (64, slots), generator=generator), 4).float()
    points = torch.cat([cells, onehot], -1) * mask.unsqueeze(-1)
    on_cpu = losses.set_reconstruction_loss(recon, points, mask)
    monkeypatch.setattr(losses, "_match_slots", _match_slots_on_device)  # what an accelerator runs
    torch.testing.assert_close(losses.set_reconstruction_loss(recon, points, mask), on_cpu)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_cost_is_matched_and_left_to_the_loss(bad):
    """A diverging model's NaN reaches the set loss (whose finite check fails the trial), instead
    of stopping the matching with scipy's "invalid numeric entries"."""
    cost = torch.rand(3, 4, 4)
    cost[1, 2, 0] = bad
    mask = torch.ones(3, 4, dtype=torch.bool)
    slot_of_point = _match_slots_on_cpu(cost, mask)
    assert sorted(slot_of_point[1].tolist()) == [0, 1, 2, 3]  # still a permutation
    clean = cost.clone()
    clean[1] = 0.0
    torch.testing.assert_close(slot_of_point[[0, 2]], _match_slots_on_cpu(clean, mask)[[0, 2]])
