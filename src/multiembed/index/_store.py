"""Saving an index directory atomically with a checksummed manifest, and verifying it.

A saved index is a directory of data files plus ``manifest.json``:

    {"format": "multiembed-index", "format_version": 1, "backend": "faiss",
     "model_version": "run-3/epoch-7", "dim": 64, "count": 1000000,
     "params": {"factory": "HNSW32", ...},
     "files": {"index.faiss": {"sha256": "...", "bytes": 123}},
     "checksum": "<sha256 of the canonical JSON of every other field>"}

The manifest's bytes must be exactly those written for its fields, so even a
change of layout is refused: every byte of a saved index is checked.

Each file is written to a temporary name in the same directory, flushed and
fsynced, hashed, then renamed over its final name; the manifest is written the
same way last, and the directory is fsynced. A save interrupted at any point
leaves either the previous manifest (whose checksums then fail for replaced
files) or none: the directory is refused, never half-read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multiembed._files import (
    SealError,
    atomic_write,
    fsync_dir,
    open_sealed_json,
    remove_stale_temps,
    seal_json,
    sha256_file,
)
from multiembed.index.errors import IndexIntegrityError

MANIFEST_NAME = "manifest.json"
FORMAT = "multiembed-index"
FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """Checksum and size of one file of a saved index."""

    sha256: str
    bytes: int


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """What ``manifest.json`` records about a saved index."""

    backend: str
    model_version: str
    dim: int
    count: int
    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON object without its own checksum (`seal_json` writes its keys sorted)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}


def write_atomic_path(directory: Path, name: str, write: Callable[[Path], object]) -> FileEntry:
    """Write `directory/name` atomically through `write(tmp)` (`atomic_write`); returns its
    checksum entry."""
    path = directory / name
    atomic_write(path, write)
    return FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)


def write_arrays(directory: Path, arrays: dict[str, np.ndarray]) -> dict[str, FileEntry]:
    """`write_atomic_path` of each of `arrays` as ``.npy`` (no pickles) under its name."""

    def npy(array: np.ndarray) -> Callable[[Path], object]:
        def fill(tmp: Path) -> None:
            with tmp.open("wb") as f:
                np.save(f, array, allow_pickle=False)

        return fill

    return {name: write_atomic_path(directory, name, npy(a)) for name, a in arrays.items()}


def write_manifest(directory: Path, manifest: Manifest) -> Manifest:
    """Write ``manifest.json`` atomically (after every data file), then fsync the directory;
    returns `manifest`."""
    text = seal_json(manifest.body())
    write_atomic_path(directory, MANIFEST_NAME, lambda tmp: tmp.write_bytes(text))
    fsync_dir(directory)
    return manifest


def _field(path: Path, body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise IndexIntegrityError(
            path, f"manifest field {key!r} is malformed", expected=kind.__name__, got=repr(value)
        )
    return value


def read_manifest(directory: str | Path) -> Manifest:
    """Parse and self-check ``manifest.json`` (its own checksum); data files are not read.

    Raises:
        IndexIntegrityError: no directory, no manifest, unreadable JSON, an unknown
            format, a malformed field, or a manifest whose checksum does not match.
    """
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise IndexIntegrityError(directory, "no such index directory")
    if not path.is_file():
        raise IndexIntegrityError(path, "missing: not a saved index (no manifest)")
    data = path.read_bytes()
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IndexIntegrityError(path, f"unreadable manifest: {err}") from err
    if not isinstance(body, dict):
        raise IndexIntegrityError(path, "manifest is not a JSON object")
    if body.get("format") != FORMAT or body.get("format_version") != FORMAT_VERSION:
        raise IndexIntegrityError(
            path,
            "unknown manifest format",
            expected=f"{FORMAT} v{FORMAT_VERSION}",
            got=f"{body.get('format')!r} v{body.get('format_version')!r}",
        )
    try:
        body = open_sealed_json(data)
    except SealError as err:
        raise IndexIntegrityError(path, f"manifest {err}") from err
    files = {}
    for name, entry in _field(path, body, "files", dict).items():
        if not isinstance(entry, dict):
            raise IndexIntegrityError(path, f"manifest entry for {name!r} is malformed")
        files[name] = FileEntry(
            sha256=_field(path, entry, "sha256", str), bytes=_field(path, entry, "bytes", int)
        )
    kinds = {"backend": str, "model_version": str, "dim": int, "count": int, "params": dict}
    return Manifest(
        **{key: _field(path, body, key, kind) for key, kind in kinds.items()}, files=files
    )


def verify(
    directory: str | Path,
    *,
    backend: str,
    expected_model_version: str,
    files: tuple[str, ...] = (),
) -> Manifest:
    """Check a saved index before loading it: manifest, backend, model version, every file,
    and that the manifest lists each of `files` (those the backend needs).

    The model version is compared before any data file is hashed, so a mismatch
    is refused at once.

    Raises:
        IndexIntegrityError: naming the file and what is wrong with it.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    where = directory / MANIFEST_NAME
    if manifest.backend != backend:
        raise IndexIntegrityError(
            where, "index backend mismatch", expected=repr(backend), got=repr(manifest.backend)
        )
    if manifest.model_version != expected_model_version:
        raise IndexIntegrityError(
            where,
            "model version mismatch: the index was built for another model (delete "
            f"{directory} and run `multiembed serve` or `multiembed retrieve` again to "
            "rebuild it)",
            expected=repr(expected_model_version),
            got=repr(manifest.model_version),
        )
    for name, entry in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise IndexIntegrityError(path, "missing file listed in the manifest")
        size = path.stat().st_size
        if size != entry.bytes:
            raise IndexIntegrityError(
                path,
                "size differs from the manifest (truncated or replaced)",
                expected=f"{entry.bytes} bytes",
                got=f"{size} bytes",
            )
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise IndexIntegrityError(
                path,
                "SHA-256 differs from the manifest (corrupted)",
                expected=entry.sha256,
                got=digest,
            )
    for name in files:
        if name not in manifest.files:
            raise IndexIntegrityError(where, f"manifest does not list {name}")
    return manifest


def save_index(
    directory: str | Path,
    index: Any,
    model_version: str,
    write: Callable[[Path], dict[str, FileEntry]],
    params: dict[str, Any] | None = None,
) -> Manifest:
    """Save `index` (its ``backend``, ``dim`` and ``size``) into `directory`: created (and
    cleared of what killed saves left), its data files written by `write`, then the
    manifest naming `model_version` and `params`, last."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    manifest = Manifest(
        backend=index.backend,
        model_version=model_version,
        dim=index.dim,
        count=index.size,
        params=params or {},
        files=write(path),
    )
    return write_manifest(path, manifest)


def check_loaded(directory: Path, manifest: Manifest, *, count: int, dim: int) -> None:
    """What was read must agree with what the manifest promised."""
    if (count, dim) != (manifest.count, manifest.dim):
        raise IndexIntegrityError(
            directory,
            "loaded index disagrees with its manifest",
            expected=f"{manifest.count} items of dim {manifest.dim}",
            got=f"{count} items of dim {dim}",
        )
