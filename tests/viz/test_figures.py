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
    assert sorted(trace.name for trace in figure.data) == sorted(
        f"{n} ({(labels == i).sum()})" for i, n in enumerate("abc")
    )
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
    assert titles == ["sample 0: 1 cells -> 0", "sample 1: 1 cells -> 0", "sample 2: 1 cells -> 0"]
    assert {t.name for t in figure.data if t.showlegend} == {"input class 1", "input class 2", "input class 4"}


def test_a_gallery_stays_within_the_browsers_webgl_contexts():
    # Chrome keeps 16 WebGL contexts a page; past that the first 3-D panels went blank.
    from vae_lab.viz.figures import MAX_SCENES

    originals = np.zeros((20, 5, 5, 5), dtype=np.uint8)
    originals[:, 1, 1, 1] = 3
    figure = reconstruction_figure(originals, originals)
    scenes = [name for name in figure.layout if name.startswith("scene")]
    assert len(scenes) == MAX_SCENES <= 16
    assert f"the first {MAX_SCENES} of 20" in figure.layout.title.text
    assert "sample 0: 1 cells -> 1" in [a.text for a in figure.layout.annotations]
