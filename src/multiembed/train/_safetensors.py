"""Tensors + JSON in one safetensors file that checks every one of its own bytes.

The safetensors header is JSON and carries a ``__metadata__`` string map; we put
there the JSON document, a SHA-256 of every tensor (name, dtype, shape, bytes)
and ``file_sha256``: the SHA-256 of the whole file as written with that value
replaced by 64 zeros. One file holds a consistent snapshot (it is renamed into
place atomically), and a flipped byte anywhere (length prefix, header, JSON
document, padding, tensor data) is refused on reading. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from multiembed._files import atomic_write_bytes
from multiembed.train.errors import RunIntegrityError


def tensors_digest(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over the sorted names, dtypes, shapes and bytes of ``tensors``.

    Example:
        >>> a = tensors_digest({"x": torch.zeros(2), "y": torch.tensor(True)})
        >>> a == tensors_digest({"y": torch.tensor(True), "x": torch.zeros(2)})
        True
        >>> a == tensors_digest({"x": torch.tensor([0.0, 1e-45]), "y": torch.tensor(True)})
        False
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_SEAL = "0" * 64  # file_sha256 while the file's digest is computed


def _resealed(path: Path, data: bytes, value: str, new: str) -> bytes:
    """``data`` with the JSON string ``"value"`` of ``file_sha256`` in the header set to `new`.

    The quotes make it unambiguous: inside a JSON string (the document) a quote is escaped.
    """
    (size,) = struct.unpack("<Q", data[:8])
    token = f'"{value}"'.encode()
    start = data.find(token, 8, 8 + size)
    if start < 0 or data.find(token, start + 1, 8 + size) >= 0:
        raise RunIntegrityError(path, "file checksum field is damaged (the file is corrupt)")
    return data[: start + 1] + new.encode() + data[start + 1 + len(value) :]


def write(path: Path, tensors: dict[str, Tensor], document: dict[str, Any], kind: str) -> None:
    """Atomically write ``tensors`` and the JSON ``document``."""
    # own contiguous CPU copies: safetensors refuses views and shared storage
    plain = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    metadata = {
        "format": kind,
        "document": json.dumps(document),
        "tensors_sha256": tensors_digest(plain),
        "file_sha256": _SEAL,
    }
    data = st_save(plain, metadata=metadata)
    atomic_write_bytes(path, _resealed(path, data, _SEAL, hashlib.sha256(data).hexdigest()))


def read(path: Path, kind: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a file written by `write`; every kind of damage is a `RunIntegrityError`."""
    if not path.is_file():
        raise RunIntegrityError(path, "missing")
    data = path.read_bytes()
    metadata = _metadata(path, data)
    if metadata.get("format") != kind:
        raise RunIntegrityError(
            path, f"format {metadata.get('format')!r}, expected {kind!r} (not this kind of file)"
        )
    _check_file_digest(path, data, metadata.get("file_sha256"))
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise RunIntegrityError(path, f"unreadable tensors ({err})") from err
    if tensors_digest(tensors) != metadata.get("tensors_sha256"):
        raise RunIntegrityError(path, "tensor checksum mismatch (the file is corrupt)")
    try:
        document = json.loads(metadata.get("document", ""))
    except json.JSONDecodeError as err:
        raise RunIntegrityError(path, f"metadata is not valid JSON ({err})") from err
    if not isinstance(document, dict):
        raise RunIntegrityError(path, "metadata document is not a JSON object")
    return tensors, document


def _check_file_digest(path: Path, data: bytes, recorded: object) -> None:
    """The whole file, with ``file_sha256`` zeroed, must hash to ``file_sha256``."""
    if not isinstance(recorded, str) or len(recorded) != len(_SEAL):
        raise RunIntegrityError(path, "has no whole-file checksum (damaged, or not written here)")
    actual = hashlib.sha256(_resealed(path, data, recorded, _SEAL)).hexdigest()
    if actual != recorded:
        raise RunIntegrityError(
            path,
            f"checksum mismatch: sha256 {actual[:16]}..., the file says {recorded[:16]}... "
            "(the file is corrupt)",
        )


def _metadata(path: Path, data: bytes) -> dict[str, str]:
    """The ``__metadata__`` map of a safetensors byte string (8-byte length, JSON header)."""
    if len(data) < 8:
        raise RunIntegrityError(path, f"truncated ({len(data)} bytes, no safetensors header)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise RunIntegrityError(
            path, f"truncated (header of {size} bytes, file of {len(data)} bytes)"
        )
    try:
        header = json.loads(data[8 : 8 + size])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunIntegrityError(path, f"corrupt safetensors header ({err})") from err
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise RunIntegrityError(path, "safetensors header has no metadata")
    return meta
