"""The hardware side of a trial (device, precision, compile), free of torch imports.

It is kept apart from the hyperparameters because it changes how fast a trial runs, not what
it learns; study files (`training.device`, ...) and the CLI (`--device`) both validate into it.
`vae_lab.device` turns it into torch objects.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vae_lab.choices import Precision
from vae_lab.errors import VaeLabError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def check_device_spec(spec: str, where: str = "device") -> str:
    """`spec` if it names a device vae-lab knows, else a one-line user error."""
    if not DEVICE_PATTERN.match(spec):
        raise VaeLabError(where, f"unknown device {spec!r}", "use auto, cpu, cuda or cuda:N")
    return spec


class Runtime(BaseModel):
    """How a trial runs: on which device, in which precision, compiled or not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str = Field(default="auto", description="auto (CUDA when available, else CPU), cpu, cuda or cuda:N")
    precision: Precision = Field(default="fp32", description="fp32, or bf16/fp16 autocast (fp16 with a grad scaler)")
    compile: bool = Field(default=False, description="torch.compile the model (slow first epoch, faster later)")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"unknown device {value!r}: use auto, cpu, cuda or cuda:N")
        return value
