"""Opening a stored example set as read-only memory maps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from multiembed._files import SealError, crc32_file, open_sealed_json
from multiembed.data.examples._format import (
    _ARRAYS,
    _OPTIONAL,
    FORMAT_VERSION,
    META_FILE,
)
from multiembed.errors import DataError, InputFileError


class ExampleStore:
    """Examples written by `build_examples`, as read-only memory-mapped arrays.

    Attributes are the arrays named in the module docstring (``history``,
    ``target``, ...; ``history_ts`` is None when not stored), ``meta`` (the
    parsed ``meta.json``), ``seq_len`` (``L``) and ``max_topics`` (``T``).
    Pickling keeps only the path and reopens, so DataLoader workers share the
    files rather than copies.
    """

    user: np.ndarray
    event: np.ndarray
    target: np.ndarray
    target_ts: np.ndarray
    source_topic: np.ndarray
    history: np.ndarray
    history_valid: np.ndarray
    history_negative: np.ndarray
    history_ts: np.ndarray | None
    followed: np.ndarray

    def __init__(self, path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.path = path
        self.meta = meta
        self.seq_len = int(meta["seq_len"])
        self.max_topics = int(meta["max_topics"])
        self.history_ts = None
        for name, array in arrays.items():
            setattr(self, name, array)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: bool = False) -> ExampleStore:
        """Open an example directory; checks the format and every array's dtype and shape.

        ``meta.json`` carries its own checksum and the CRC-32 of every array file;
        with ``verify`` every array file is read once and checked against it (a
        flipped byte anywhere is refused), otherwise only ``meta.json`` is checked.

        Raises:
            InputFileError: a missing or damaged file, named.
            DataError: an array of the wrong dtype or shape.
        """
        root = Path(path)
        expected = "a directory written by build_examples"
        meta_path = root / META_FILE
        if not meta_path.is_file():
            raise InputFileError(meta_path, "missing", expected=expected)
        try:
            meta = open_sealed_json(meta_path.read_bytes())
        except SealError as err:
            raise InputFileError(meta_path, str(err), expected=expected) from err
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise InputFileError(
                meta_path,
                f"format_version {version!r}",
                expected=f"format_version {FORMAT_VERSION}",
            )
        n = int(meta["n_examples"])
        sizes = {"": (), "L": (meta["seq_len"],), "T": (meta["max_topics"],)}
        arrays: dict[str, np.ndarray] = {}
        for name, (dtype, letter) in _ARRAYS.items():
            if name in _OPTIONAL and not meta.get("has_" + name, False):
                continue
            file = root / f"{name}.npy"
            if not file.is_file():
                raise InputFileError(file, "missing", expected=expected)
            if verify and crc32_file(file) != meta.get("crc32", {}).get(file.name):
                raise InputFileError(
                    file, f"CRC-32 differs from {META_FILE} (corrupt)", expected=expected
                )
            try:
                array = np.load(file, mmap_mode="r")
            except ValueError as err:
                raise InputFileError(file, f"not a NumPy array file ({err})") from err
            shape = (n, *sizes[letter])
            if array.dtype != dtype or array.shape != shape:
                raise DataError(
                    f"{file}: expected {np.dtype(dtype)} of shape {list(shape)}, "
                    f"got {array.dtype} of shape {list(array.shape)}"
                )
            arrays[name] = array
        return cls(root, meta, arrays)

    def __len__(self) -> int:
        return int(self.meta["n_examples"])

    def __repr__(self) -> str:
        n, length, topics = len(self), self.seq_len, self.max_topics
        return f"ExampleStore({str(self.path)!r}, N={n}, L={length}, T={topics})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(ExampleStore.open(state["path"]).__dict__)
