"""`vae-lab models list` and `show`, through the sub-app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vae_lab.cli.models import app
from vae_lab.models import ARCHITECTURES

runner = CliRunner()


def test_list_shows_a_table_of_every_family():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for name in ARCHITECTURES:
        assert name in result.stdout
    assert "1,825,285" in result.stdout and "sparse" in result.stdout


def test_list_json_is_one_document():
    result = runner.invoke(app, ["list", "--json", "--latent-dim", "2"])
    assert result.exit_code == 0, result.output
    families = json.loads(result.stdout)
    assert [f["name"] for f in families] == list(ARCHITECTURES)
    assert all({"name", "params", "input", "description"} <= set(f) for f in families)
    assert {f["name"]: f["params"] for f in families}["deep"] == 6_142_469


def test_list_follows_the_latent_dim():
    families = json.loads(runner.invoke(app, ["list", "--json", "--latent-dim", "4"]).stdout)
    # Two more latents add a weight and a bias to each head, and a weight row to the first decoder FC.
    assert {f["name"]: f["params"] for f in families}["fc"] == 1_629_495 + 2 * 2 * (256 + 1) + 2 * 256


def test_show_prints_the_layer_table_and_total():
    result = runner.invoke(app, ["show", "conv_skip"])
    assert result.exit_code == 0, result.output
    for text in ("(skip) Conv3d", "88,064", "Reparameterization step", "2,001,158", "256x3x3x3"):
        assert text in result.stdout


def test_show_categorical_head():
    result = runner.invoke(app, ["show", "conv", "--output", "categorical", "--latent-dim", "3"])
    assert result.exit_code == 0, result.output
    assert "5x11x11x11" in result.stdout


def test_show_unknown_family_is_one_line_on_stderr_and_exit_2():
    result = runner.invoke(app, ["show", "nope"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "unknown architecture 'nope'" in result.stderr
