"""Numbers for "do the clusters mean anything": measured on the validation latent means.

The journal compared latent spaces by eye ("the clusters look tighter"). These turn that into
numbers a study can select on: how well labels separate (silhouette), whether a sample's
nearest neighbours share its label (kNN accuracy), and whether a 2-D picture of the latent
keeps its neighbourhoods (trustworthiness). All need labelled data except trustworthiness, and
all run on at most `MAX_POINTS` samples so they stay cheap.
"""

from __future__ import annotations

import numpy as np

MAX_POINTS = 2000
NEIGHBOURS = 5


def _labelled(latents: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    keep = labels >= 0
    if keep.sum() < NEIGHBOURS + 2 or len(np.unique(labels[keep])) < 2:
        return None
    return latents[keep], labels[keep]


def silhouette(latents: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette of the labels in latent space, in [-1, 1]; None without two labels."""
    from sklearn.metrics import silhouette_score

    labelled = _labelled(latents, labels)
    if labelled is None:
        return None
    return float(silhouette_score(*labelled))


def knn_accuracy(latents: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS) -> float | None:
    """Leave-one-out k-nearest-neighbour label accuracy (majority of the k nearest others)."""
    from sklearn.neighbors import NearestNeighbors

    labelled = _labelled(latents, labels)
    if labelled is None:
        return None
    points, classes = labelled
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    neighbour_labels = classes[index[:, 1:]]  # column 0 is the point itself
    votes = np.apply_along_axis(np.bincount, 1, neighbour_labels, minlength=int(classes.max()) + 1)
    return float((votes.argmax(axis=1) == classes).mean())


def trustworthiness(latents: np.ndarray, projection: np.ndarray, k: int = NEIGHBOURS) -> float | None:
    """How far a 2-D projection keeps each point's latent neighbours (1: perfectly)."""
    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    if len(latents) <= 2 * k + 1:
        return None
    return float(sklearn_trustworthiness(latents, projection, n_neighbors=k))


def pca_projection(latents: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """2-D PCA of the latents and the share of variance it keeps (dims as is below 3)."""
    if latents.shape[1] <= 2:
        padded = np.zeros((len(latents), 2), dtype=np.float32)
        padded[:, : latents.shape[1]] = latents
        return padded, 1.0
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed).fit(latents)
    return pca.transform(latents), float(pca.explained_variance_ratio_.sum())


def latent_scores(latents: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The `val_*` latent metrics of one model: silhouette, kNN accuracy, PCA trustworthiness."""
    latents, labels = latents[:MAX_POINTS], labels[:MAX_POINTS]
    scores = {
        "val_silhouette": silhouette(latents, labels),
        "val_knn_accuracy": knn_accuracy(latents, labels),
        "val_trustworthiness_pca": trustworthiness(latents, pca_projection(latents)[0]),
    }
    return {name: value for name, value in scores.items() if value is not None}
