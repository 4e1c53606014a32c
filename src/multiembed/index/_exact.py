"""The exact backend: brute-force inner products, the reference every other backend meets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from multiembed.index._checks import (
    check_depths,
    check_ids,
    check_int,
    check_new_ids,
    check_vectors,
)
from multiembed.index._hits import Hits, topk_by_score
from multiembed.index._store import (
    Manifest,
    check_loaded,
    save_index,
    verify,
    write_arrays,
)
from multiembed.index.errors import IndexIntegrityError

_IDS = "ids.npy"
_VECTORS = "vectors.npy"


class ExactIndex:
    """Exact inner-product search: one BLAS matrix product and an argpartition top-k.

    Items are kept sorted by id, so equal scores are broken by the smaller id
    and results are fully deterministic. Cost per search is ``Q * C * D``
    multiply-adds; NumPy's BLAS decides its own threads.

    Args:
        dim: `D`, the vector dimension.

    >>> index = ExactIndex(dim=2)
    >>> index.add(np.array([5, 9, 2]), np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
    >>> hits = index.search(np.array([[1.0, 0.0]]), k=2)
    >>> hits.ids.tolist(), hits.scores.astype(float).round(2).tolist()
    ([[5, 2]], [[1.0, 0.6]])
    >>> index.search(np.array([[1.0, 0.0]]), k=4).ids.tolist()  # padded: only 3 items
    [[5, 2, 9, -1]]
    """

    backend = "exact"

    def __init__(self, dim: int) -> None:
        self._dim = check_int("ExactIndex", "dim", dim)
        self._ids = np.empty(0, dtype=np.int64)  # [C], ascending
        self._vectors = np.empty((0, self._dim), dtype=np.float32)  # [C, D], rows follow _ids

    @property
    def dim(self) -> int:
        """`D`."""
        return self._dim

    @property
    def size(self) -> int:
        """`C`."""
        return int(self._ids.size)

    def ids(self) -> np.ndarray:
        """``[C]`` int64 ids in ascending order (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add `vectors` ``[C, D]`` under distinct new `ids` ``[C]``."""
        vectors = check_vectors("ExactIndex.add", "vectors", vectors, self._dim)
        ids = check_ids("ExactIndex.add", ids, vectors.shape[0])
        check_new_ids("ExactIndex.add", ids, self._ids)
        all_ids = np.concatenate([self._ids, ids])
        order = np.argsort(all_ids, kind="stable")
        self._ids = all_ids[order]
        self._vectors = np.concatenate([self._vectors, vectors])[order]

    def search(self, queries: np.ndarray, k: int, *, depths: np.ndarray | None = None) -> Hits:
        """Exact top-`k` of `queries` ``[Q, D]``: `Hits` ``[Q, k]``, ties by smaller id.

        `depths` (``[Q]`` per-row needs, at most `k`) is checked and otherwise
        unused: one matrix product serves every depth.
        """
        queries = check_vectors("ExactIndex.search", "queries", queries, self._dim)
        k = check_int("ExactIndex.search", "k", k)
        check_depths("ExactIndex.search", depths, queries.shape[0], k)
        scores = queries @ self._vectors.T  # [Q, C]
        return topk_by_score(scores, self._ids, k)

    def save(self, directory: str | Path, *, model_version: str) -> Manifest:
        """Write ``ids.npy``, ``vectors.npy`` and the manifest into `directory`."""
        arrays: dict[str, np.ndarray] = {_IDS: self._ids, _VECTORS: self._vectors}
        return save_index(directory, self, model_version, lambda p: write_arrays(p, arrays))

    @classmethod
    def load(cls, directory: str | Path, *, expected_model_version: str) -> ExactIndex:
        """Read an index written by `save`, after `verify` accepts every file.

        Raises:
            IndexIntegrityError: missing, truncated or altered file; another model version.
        """
        path = Path(directory)
        manifest = verify(
            path,
            backend=cls.backend,
            expected_model_version=expected_model_version,
            files=(_IDS, _VECTORS),
        )
        index = cls(manifest.dim)
        ids, vectors = (np.load(path / name, allow_pickle=False) for name in (_IDS, _VECTORS))
        if ids.ndim != 1 or vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
            raise IndexIntegrityError(
                path / _VECTORS,
                "vectors do not match ids",
                expected=f"[{ids.shape[0]}, D]",
                got=str(list(vectors.shape)),
            )
        check_loaded(path, manifest, count=ids.shape[0], dim=vectors.shape[1])
        index._ids, index._vectors = ids, vectors
        return index
