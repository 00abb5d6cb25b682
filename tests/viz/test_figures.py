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


def test_the_gallerys_worst_panels_say_how_many_cells_are_wrong_once():
    """Six panels a row: a caption that said the count twice ran into its neighbour's."""
    from vae_lab.study.trial.artifacts import gallery_samples

    labels = np.array([0, 0, 1, 1])
    errors = np.array([0, 3, 0, 5])
    chosen, names = gallery_samples(labels, errors, ["a", "b"], per_label=1)
    assert chosen == [0, 2, 3] and names == ["a", "b", "worst #3"]
    originals = np.zeros((4, 5, 5, 5), dtype=np.uint8)  # sample 3 has one wrong cell
    originals[:, 1, 1, 1] = 2
    reconstructions = originals.copy()
    reconstructions[3, 1, 1, 1] = 1
    figure = reconstruction_figure(originals[chosen], reconstructions[chosen], names=names)
    assert [a.text for a in figure.layout.annotations][2] == "worst #3: 1 cells -> 1, 1 wrong"


def test_each_panel_draws_one_box_and_only_the_classes_it_holds():
    """Plotly validates every trace, most of a trial's figure time: an input and its
    reconstruction share one box, and a class absent from a grid gets no trace."""
    originals = np.zeros((3, 5, 5, 5), dtype=np.uint8)
    originals[:, 2, 2, 2] = [1, 2, 4]
    figure = reconstruction_figure(originals, originals)
    boxes = [t for t in figure.data if t.hoverinfo == "skip"]
    assert sorted(t.scene for t in boxes) == ["scene", "scene2", "scene3"]
    assert all(len(t.x) for t in figure.data if t.hoverinfo != "skip")
    assert len(figure.data) == 3 * 3  # per panel: the box, the input's one class, the reconstruction's
