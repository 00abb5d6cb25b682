import numpy as np
import pytest

from vae_lab.viz import latent_projection_figure, reconstruction_figure


def latents(n=80, dims=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    return rng.normal(size=(n, dims)).astype(np.float32) + labels[:, None] * 3, labels


def test_pca_figure_has_one_trace_per_label_with_counts():
    z, labels = latents()
    figure = latent_projection_figure(z, labels, ["a", "b", "c"], method="pca")
    assert sorted(trace.name for trace in figure.data) == sorted(f"{n} ({(labels == i).sum()})" for i, n in enumerate("abc"))
    assert "variance" in figure.layout.title.text


@pytest.mark.slow
def test_umap_figure_projects_to_two_dimensions():
    z, labels = latents()
    figure = latent_projection_figure(z, labels, ["a", "b", "c"], method="umap")
    assert all(len(trace.x) == (labels == i).sum() for i, trace in enumerate(figure.data))
    assert figure.layout.xaxis.title.text == "UMAP 1"


def test_reconstruction_figure_draws_every_sample_even_empty_ones():
    originals = np.zeros((3, 5, 5, 5), dtype=np.uint8)
    originals[:, 2, 2, 2] = [1, 2, 4]
    reconstructions = np.zeros_like(originals)  # a model that predicts nothing
    figure = reconstruction_figure(originals, reconstructions)
    titles = [a.text for a in figure.layout.annotations]
    assert titles[:3] == ["sample 0: 1 cells", "sample 1: 1 cells", "sample 2: 1 cells"]
    assert titles[3:] == ["reconstructed: 0 cells"] * 3
    assert {t.name for t in figure.data if t.showlegend} == {"class 1", "class 2", "class 4"}
