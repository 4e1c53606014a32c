"""Load any saved item index by the backend its manifest names."""

from __future__ import annotations

from pathlib import Path

from multiembed.index._exact import ExactIndex
from multiembed.index._faiss import FaissIndex
from multiembed.index._store import MANIFEST_NAME, read_manifest
from multiembed.index.errors import IndexIntegrityError


def load_index(
    directory: str | Path, *, expected_model_version: str, threads: int | None = None
) -> ExactIndex | FaissIndex:
    """Load an `ExactIndex` or `FaissIndex` saved in `directory`, verifying every file.

    Args:
        directory: written by the index's ``save``.
        expected_model_version: the model version the caller serves; the index must
            have been saved for exactly this version.
        threads: FAISS threads (FAISS backend only; default: all OpenMP threads).

    Raises:
        IndexIntegrityError: no manifest, an unknown backend, a model version
            mismatch, or a missing, truncated or altered file.
    """
    backend = read_manifest(directory).backend
    if backend == ExactIndex.backend:
        return ExactIndex.load(directory, expected_model_version=expected_model_version)
    if backend == FaissIndex.backend:
        return FaissIndex.load(
            directory, expected_model_version=expected_model_version, threads=threads
        )
    raise IndexIntegrityError(
        Path(directory) / MANIFEST_NAME,
        "not an item index backend",
        expected="'exact' or 'faiss'",
        got=repr(backend),
    )
