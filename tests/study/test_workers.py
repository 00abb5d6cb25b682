"""Two worker processes on one study with the default local stores (journal file + SQLite)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.test_cli import VAE_LAB
from vae_lab.data import synthesize, write_dataset

pytestmark = pytest.mark.slow

STUDY = """
name: pair
data: {path: voxels.parquet}
training: {epochs: 2}
space: {architecture: [fc], latent_dim: [2, 3, 4, 5]}
artifacts: {pca: false, reconstructions: 0}
"""


def test_two_local_workers_share_a_study_and_agree_on_the_champion(lab):
    write_dataset(synthesize(rows=1500, seed=5), lab / "voxels.parquet")
    (lab / "studies" / "pair.yaml").write_text(STUDY)
    workers = [
        subprocess.Popen([VAE_LAB, "study", "run", "pair", "--json"], cwd=lab, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr
        assert "Traceback" not in stderr
    status = json.loads(subprocess.run([VAE_LAB, "study", "status", "pair", "--json"], cwd=lab, capture_output=True, text=True, check=True).stdout)
    complete = [t for t in status["trials"] if t["state"] == "COMPLETE"]
    assert {t["params"]["latent_dim"] for t in complete} == {2, 3, 4, 5}
    best = max(complete, key=lambda t: t["value"])
    shown = json.loads(subprocess.run([VAE_LAB, "registry", "show", "pair", "--json"], cwd=lab, capture_output=True, text=True, check=True).stdout)
    assert float(shown["tags"]["value"]) == pytest.approx(best["value"])
