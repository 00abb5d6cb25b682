"""A prepared dataset named by what it is, so a run can say which rows it saw.

`DataRef` is written into every trial's record and every MLflow dataset input: the file, the
hash of its bytes, the split options and the split sizes. `ref.prepare(ref.path, cache_dir)`
rebuilds exactly the same rows, which is how `vae-lab evaluate` scores a champion on the
split it was selected on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from vae_lab.data.prepare import PreparedDataset

SPLIT_CONTEXT = {"train": "training", "val": "validation", "test": "test"}


class DataRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    content_hash: str
    toy_fraction: float
    seed: int
    grid: int
    rows: dict[str, int]  # split -> rows
    label_names: list[str] = []

    @property
    def name(self) -> str:
        """The file's stem: `synthetic` for data/synthetic.parquet."""
        return self.path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]

    def prepare(self, path: str | Path, cache_dir: Path) -> PreparedDataset:
        """These rows again, cut from `path`: this file, or a copy of it (whose bytes may differ)."""
        from vae_lab.data.prepare import prepare_dataset

        return prepare_dataset(
            path, toy_fraction=self.toy_fraction, seed=self.seed, grid=self.grid, cache_dir=cache_dir
        )

    def digest(self, split: str) -> str:
        """A short fingerprint of one split: the file's bytes and the options that cut it."""
        key = f"{self.content_hash}:{self.toy_fraction}:{self.seed}:{self.grid}:{split}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def same_rows(self, other: "DataRef") -> bool:
        return (self.content_hash, self.toy_fraction, self.seed, self.grid) == (
            other.content_hash,
            other.toy_fraction,
            other.seed,
            other.grid,
        )
