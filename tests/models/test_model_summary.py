"""Layer tables against the journal, row by row, and the family overview."""

from __future__ import annotations

import pytest

from vae_lab.models import ARCHITECTURES, ModelConfig, build_model, count_parameters
from vae_lab.models.summary import describe_families, layer_table

# The journal's trainable layers in order (latent dim 2, scalar head); the latent row is both heads.
JOURNAL_LAYERS = {
    "fc": [681984, 131328, 1028, 768, 131584, 682803],
    "conv": [3584, 884992, 27652, 20736, 884864, 3457],
    "conv_pool": [3584, 884992, 27652, 20736, 884864, 3457],
    "conv_skip": [3584, 884992, 88064, 27652, 20736, 884864, 3457, 87809],
    "deep": [1792, 221312, 884992, 1769728, 221188, 165888, 1769728, 884864, 221248, 1729],
    "batch_norm": [
        *(1792, 128, 221312, 256, 884992, 512, 1769728, 512, 221188),
        *(165888, 110592, 1769728, 512, 884864, 256, 221248, 128, 1729),
    ],
}


@pytest.mark.parametrize("name", list(JOURNAL_LAYERS))
def test_layer_table_matches_the_journal(name):
    rows = layer_table(build_model(ModelConfig(architecture=name)))
    assert [row.params for row in rows if row.params] == JOURNAL_LAYERS[name]
    labels = [row.layer for row in rows]
    assert "Latent FC branching (mu, logvar)" in labels
    assert labels[labels.index("Latent FC branching (mu, logvar)") + 1] == "Reparameterization step"


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_layer_table_sums_to_the_trainable_parameters(name):
    head = ARCHITECTURES[name].heads[-1]  # categorical where the family has it
    model = build_model(ModelConfig(architecture=name, output=head, latent_dim=3))
    rows = layer_table(model)
    assert sum(row.params for row in rows) == count_parameters(model)
    assert model.training  # the summary restores the mode it found


def test_conv_pool_table_shows_pooling_and_upsampling_shapes():
    rows = layer_table(build_model(ModelConfig(architecture="conv_pool")))
    shapes = {row.layer: [] for row in rows}
    for row in rows:
        shapes[row.layer].append(row.output_shape)
    assert shapes["MaxPool3d"] == [(128, 6, 6, 6), (256, 3, 3, 3)]
    assert shapes["Upsample"] == [(256, 6, 6, 6), (128, 11, 11, 11)]
    assert rows[-1].output_shape == (1, 11, 11, 11)


def test_describe_families_lists_every_family():
    families = describe_families(latent_dim=2)
    assert [f["name"] for f in families] == list(ARCHITECTURES)
    by_name = {f["name"]: f for f in families}
    assert by_name["conv"]["params"] == 1_825_285
    assert by_name["pointnet"]["input"] == "sparse" and by_name["fc"]["input"] == "dense"
