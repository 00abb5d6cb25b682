"""`vae-lab models`: list the model zoo and show one family layer by layer."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer
from rich.table import Table

from vae_lab.cli.common import JsonFlag, emit_json, out, user_errors

app = typer.Typer(help="Inspect the model zoo: every family, its size and its layers.", no_args_is_help=True)

LatentDim = Annotated[int, typer.Option("--latent-dim", min=1, help="Latent dimension the models are built with.")]


class OutputHead(str, Enum):
    scalar = "scalar"
    categorical = "categorical"
    set = "set"


@app.command("list")
@user_errors
def list_models(latent_dim: LatentDim = 2, as_json: JsonFlag = False) -> None:
    """Every registered family with its trainable parameters and the input it reads."""
    from vae_lab.models.summary import describe_families

    families = describe_families(latent_dim)
    if as_json:
        emit_json(families)
        return
    table = Table(title=f"VAE families (latent dim {latent_dim}, scalar head, 11^3 grid)")
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("trainable parameters", justify="right")
    table.add_column("input")
    for family in families:
        table.add_row(family["name"], family["description"], f"{family['params']:,}", family["input"])
    out.print(table)


@app.command("show")
@user_errors
def show(
    name: Annotated[str, typer.Argument(help="Family name, as in `vae-lab models list`.")],
    latent_dim: LatentDim = 2,
    output: Annotated[
        Optional[OutputHead],
        typer.Option(
            "--output",
            help="Decoder head: scalar or categorical (dense families), set (pointnet); default: the family's first.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """One family layer by layer: parameters and output shape of each layer, and the total."""
    from vae_lab.models import ModelConfig, check_architecture
    from vae_lab.models.summary import layer_table

    family = check_architecture(ModelConfig(architecture=name), where="vae-lab models show")
    config = ModelConfig(
        architecture=name, latent_dim=latent_dim, output=output.value if output else None, grid=family.fixed_grid or 11
    )
    rows = layer_table(family(config))
    if as_json:
        layers = [{"layer": r.layer, "params": r.params, "output_shape": list(r.output_shape)} for r in rows]
        emit_json(
            {"name": name, "description": family.description, "layers": layers, "params": sum(r.params for r in rows)}
        )
        return
    table = Table(title=f"{name}: {family.description}")
    table.add_column("layer")
    table.add_column("parameters", justify="right")
    table.add_column("output shape")
    for row in rows:
        table.add_row(row.layer, f"{row.params:,}" if row.params else "", "x".join(map(str, row.output_shape)))
    table.add_section()
    table.add_row("Total", f"{sum(row.params for row in rows):,}", "", style="bold")
    out.print(table)
