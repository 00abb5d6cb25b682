"""Layer-by-layer tables of a model, in the journal's style, and a one-line-per-family overview.

`layer_table` runs the family's `example_input` through the model with forward hooks on every
leaf module, so the table shows what actually runs, in the order it runs: activations are
left out, the two latent heads merge into one "Latent FC branching" row and a
"Reparameterization step" row follows them, as the journal writes its architectures. For that,
every family names its latent heads `to_mu` and `to_logvar`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vae_lab.models.base import ARCHITECTURES, BaseVAE, ModelConfig, build_model, count_parameters

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Identity)
LATENT_HEADS = ("to_mu", "to_logvar")


@dataclass(frozen=True)
class LayerRow:
    """One row: the layer's label, its trainable parameters, its output shape without the batch."""

    layer: str
    params: int
    output_shape: tuple[int, ...]


def layer_table(model: BaseVAE) -> list[LayerRow]:
    """The layers `model` runs on its example input; their params sum to `count_parameters`."""
    calls: list[tuple[str, nn.Module, Tensor]] = []
    handles = [
        module.register_forward_hook(lambda m, args, out, name=name: calls.append((name, m, out)))
        for name, module in model.named_modules()
        if not list(module.children()) and not isinstance(module, ACTIVATIONS)
    ]
    was_training = model.training
    try:
        # Eval mode: BatchNorm must not update its running statistics for a summary.
        model.eval()
        with torch.no_grad():
            model.forward_batch(model.example_input(batch_size=2))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return _rows(calls)


def _rows(calls: list[tuple[str, nn.Module, Tensor]]) -> list[LayerRow]:
    rows: list[LayerRow] = []
    heads = {name: (module, out) for name, module, out in calls if name in LATENT_HEADS}
    for name, module, out in calls:
        if name == LATENT_HEADS[0]:
            continue
        if name == LATENT_HEADS[1]:
            params = sum(count_parameters(head) for head, _ in heads.values())
            shape = tuple(out.shape[1:])
            rows.append(LayerRow("Latent FC branching (mu, logvar)", params, shape))
            rows.append(LayerRow("Reparameterization step", 0, shape))
            continue
        rows.append(LayerRow(_label(name, module), count_parameters(module), tuple(out.shape[1:])))
    return rows


def _label(name: str, module: nn.Module) -> str:
    label = getattr(module, "layer_label", None) or ("FC" if isinstance(module, nn.Linear) else type(module).__name__)
    if "skip" in name:
        return f"(skip) {label}"
    if name.startswith("point_mlp"):
        return f"(per point) {label}"
    return label


def describe_families(latent_dim: int = 2) -> list[dict]:
    """One dict per registered family: name, description, trainable params, input kind."""
    families = []
    for name, cls in ARCHITECTURES.items():
        # On the meta device: shapes only, no weight initialisation, so listing is instant.
        with torch.device("meta"):
            model = build_model(
                ModelConfig(architecture=name, latent_dim=latent_dim, output=cls.heads[0], grid=cls.fixed_grid or 11)
            )
        families.append(
            {
                "name": name,
                "description": cls.description,
                "params": count_parameters(model),
                "input": "sparse" if cls.reads_points else "dense",
            }
        )
    return families
