"""The one protocol every item index implements (exact, FAISS)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from multiembed.index._hits import Hits
from multiembed.index._store import Manifest


@runtime_checkable
class VectorIndex(Protocol):
    """An inner-product item index over `C` items of dimension `D`.

    - ``add(ids [C] int64, vectors [C, D] float)``: ids are distinct, non-negative
      and new to the index.
    - ``search(queries [Q, D], k, depths=None) -> Hits [Q, k]``: all of a request's
      embeddings in one call, best first; short rows padded with ``-1`` / ``-inf``
      (strip with `Hits.row`). ``depths [Q]`` (each at most `k`) says row ``q`` is
      needed only to ``depths[q]``; a backend may use it to search less (rows are
      complete at least to their depth).
    - ``save(directory, model_version=...)``: files plus a checksummed
      ``manifest.json``; the backend's ``load(directory, expected_model_version=...)``
      classmethod (or `load_index`) reads it back and refuses damage.
    """

    @property
    def dim(self) -> int:
        """`D`, the vector dimension."""
        ...

    @property
    def size(self) -> int:
        """`C`, the number of items indexed."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Index `vectors` ``[C, D]`` under `ids` ``[C]``."""
        ...

    def search(self, queries: np.ndarray, k: int, *, depths: np.ndarray | None = None) -> Hits:
        """Top-`k` items by inner product for each of `queries` ``[Q, D]``."""
        ...

    def save(self, directory: str | Path, *, model_version: str) -> Manifest:
        """Write the index into `directory` for model `model_version`."""
        ...
