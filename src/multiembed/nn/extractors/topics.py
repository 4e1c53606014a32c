"""Offline topics for PinnerFormer-style subsequences: k-means over item vectors, then assignment.

Appendix B clusters the pretrained vectors of a large sample of items into 32
concepts with k-means, once, offline; every item then belongs to the concept of
its nearest centroid. These are NumPy-in, NumPy-out functions run before
training; `SubsequenceExtractor` takes the resulting item-to-topic table.
"""

from __future__ import annotations

import faiss
import numpy as np

NO_TOPIC = -1
"""Topic of an item without a pretrained vector: it joins no subsequence."""


def kmeans_topics(
    vectors: np.ndarray, n_topics: int, *, seed: int, iterations: int = 25, restarts: int = 3
) -> np.ndarray:
    """Topic centroids by k-means (``faiss.Kmeans``, squared L2) over item vectors.

    Args:
        vectors: ``[C, V]`` finite pretrained vectors of the items to cluster (a sample of
            the corpus is enough); ``C >= n_topics``.
        n_topics: number of topics ``T``.
        seed: seed of the k-means initialisation; the same seed gives the same topics.
        iterations: Lloyd iterations per run.
        restarts: independent runs from different random initialisations; the one with
            the lowest within-topic error is kept (k-means has local minima).

    Returns:
        ``[T, V]`` float32 centroids.

    Raises:
        ValueError: for a bad shape, non-finite values, or fewer vectors than topics.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> centres = np.array([[5.0, 0.0], [0.0, 5.0]])
        >>> vectors = np.concatenate([c + rng.normal(size=(50, 2)) for c in centres])
        >>> topics = kmeans_topics(vectors, 2, seed=0)
        >>> sorted(np.round(topics).astype(int).tolist())
        [[0, 5], [5, 0]]
    """
    where = "kmeans_topics"
    if vectors.ndim != 2:
        raise ValueError(f"{where}: expected vectors of shape [C, V], got {list(vectors.shape)}")
    if isinstance(n_topics, bool) or not isinstance(n_topics, int) or n_topics < 1:
        raise ValueError(f"{where}: expected n_topics to be an int >= 1, got {n_topics!r}")
    if vectors.shape[0] < n_topics:
        raise ValueError(
            f"{where}: expected at least n_topics = {n_topics} vectors, got {vectors.shape[0]}"
        )
    if not np.isfinite(vectors).all():
        raise ValueError(f"{where}: expected finite vectors, got NaN or infinite values")
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    kmeans = faiss.Kmeans(
        data.shape[1],
        n_topics,
        niter=iterations,
        nredo=restarts,
        seed=seed,
        verbose=False,
        min_points_per_centroid=1,
    )
    kmeans.train(data)
    return np.asarray(kmeans.centroids, dtype=np.float32).reshape(n_topics, data.shape[1])


def assign_topics(
    vectors: np.ndarray, centroids: np.ndarray, present: np.ndarray | None = None
) -> np.ndarray:
    """Each item's topic: the index of its nearest centroid (squared L2, ties to the lowest).

    Args:
        vectors: ``[N, V]`` item vectors (values of absent items are ignored).
        centroids: ``[T, V]`` topic centroids, e.g. from `kmeans_topics`.
        present: ``[N]`` bool, False for items without a vector; None: all present.

    Returns:
        ``[N]`` int64 topic ids, ``-1`` (`NO_TOPIC`) where the vector is absent.

    Example:
        >>> centroids = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> vectors = np.array([[0.9, 0.2], [0.1, 0.7], [np.nan, np.nan]])
        >>> assign_topics(vectors, centroids, np.array([True, True, False])).tolist()
        [0, 1, -1]
    """
    where = "assign_topics"
    if vectors.ndim != 2 or centroids.ndim != 2 or vectors.shape[1] != centroids.shape[1]:
        raise ValueError(
            f"{where}: expected vectors [N, V] and centroids [T, V] with the same V, "
            f"got {list(vectors.shape)} and {list(centroids.shape)}"
        )
    n = vectors.shape[0]
    keep = np.ones(n, dtype=bool) if present is None else np.asarray(present, dtype=bool)
    if keep.shape != (n,):
        raise ValueError(f"{where}: expected present of shape [{n}], got {list(keep.shape)}")
    topics = np.full(n, NO_TOPIC, dtype=np.int64)
    rows = np.ascontiguousarray(vectors[keep], dtype=np.float32)
    if rows.shape[0] == 0:
        return topics
    if not np.isfinite(rows).all():
        raise ValueError(f"{where}: expected finite vectors where present, got NaN or inf")
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    _, nearest = index.search(rows, 1)  # [n_present, 1]
    topics[keep] = nearest[:, 0]
    return topics
