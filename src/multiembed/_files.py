"""Durable file writes (temporary file, fsync, rename, directory fsync) and integrity checks.

- `atomic_write`, `atomic_write_bytes`: a reader sees the old file or the whole new one;
  `remove_stale_temps` removes what a killed write left behind;
- `sha256_file`, `crc32_file`: digests of files;
- `seal_json`, `open_sealed_json`: JSON documents that carry their own checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename inside it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` so that a reader sees the old file or the whole new one, never a part.

    ``write(tmp)`` fills a temporary file in the same directory; it is fsynced,
    renamed over ``path`` and the directory is fsynced, so the new file survives
    a crash (SIGKILL, power loss) once this returns.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.txt"
        >>> atomic_write(p, lambda tmp: tmp.write_text("hello"))
        >>> p.read_text()
        'hello'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name opened exclusively with the default mode (0o666 less the umask;
    # mkstemp would leave the file private to its owner).
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb"):
            pass
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """`atomic_write` of a byte string."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x"
        >>> _ = p.write_bytes(b"abc")
        >>> sha256_file(p)[:16]
        'ba7816bf8f01cfea'
    """
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def crc32_file(path: Path, chunk: int = 1 << 22) -> str:
    """CRC-32 of a file's bytes as 8 hex digits: a cheap check that catches any flipped byte.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x"
        >>> _ = p.write_bytes(b"abc")
        >>> crc32_file(p)
        '352441c2'
    """
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def remove_stale_temps(directory: Path) -> list[Path]:
    """Remove the temporary files and folders an interrupted write left in ``directory``.

    `atomic_write` names its temporary ``.<name>.<pid>.<hex>.tmp``; one whose
    process no longer runs is an orphan of a killed write. Temporaries of live
    processes (a write in progress) are kept. Returns what was removed.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / ".a.999999999.0f0f0f0f.tmp").write_bytes(b"half")
        >>> [p.name for p in remove_stale_temps(d)], sorted(p.name for p in d.iterdir())
        (['.a.999999999.0f0f0f0f.tmp'], [])
    """
    removed: list[Path] = []
    for path in sorted(directory.glob(".*.tmp")):
        match = _TEMP.fullmatch(path.name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


_TEMP = re.compile(r"\..+\.(\d+)\.[0-9A-Za-z_]+\.tmp")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (this one and other users' included)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # gone, or not a process id at all
        return False
    except PermissionError:  # another user's process
        pass
    return True


class SealError(ValueError):
    """A sealed JSON file whose checksum or layout does not match its content."""


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def content_checksum(body: dict[str, Any]) -> str:
    """SHA-256 of a JSON object's content, whatever its key order and layout (what
    `seal_json` records, for files whose key order is part of their contract).

    Example:
        >>> content_checksum({"a": 1, "b": [2]}) == content_checksum({"b": [2], "a": 1})
        True
    """
    return hashlib.sha256(_canonical(body)).hexdigest()


def seal_json(body: dict[str, Any]) -> bytes:
    """``body`` plus ``"checksum"``, the SHA-256 of its canonical JSON, as indented JSON bytes.

    A ``"checksum"`` already in ``body`` (a sealed document read back as plain
    JSON) is replaced.

    Example:
        >>> text = seal_json({"steps": 100})
        >>> open_sealed_json(text)
        {'steps': 100}
        >>> open_sealed_json(text.replace(b"100", b"300"))
        Traceback (most recent call last):
        ...
        multiembed._files.SealError: checksum mismatch (edited or corrupt)
    """
    body = {k: v for k, v in body.items() if k != "checksum"}
    digest = content_checksum(body)
    return (json.dumps({**body, "checksum": digest}, indent=2, sort_keys=True) + "\n").encode()


def open_sealed_json(data: bytes) -> dict[str, Any]:
    """The body of a `seal_json` document; every byte of ``data`` is checked.

    Raises:
        SealError: not JSON, not an object, no checksum, a checksum that does
            not match the body, or bytes that differ from what `seal_json` writes
            (so even a change of layout is refused).
    """
    try:
        sealed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SealError(f"not valid JSON, truncated or corrupt ({err})") from err
    if not isinstance(sealed, dict):
        raise SealError("not a JSON object")
    recorded = sealed.pop("checksum", None)
    if not isinstance(recorded, str):
        raise SealError("has no checksum (written by an older version, or not by multiembed)")
    if content_checksum(sealed) != recorded:
        raise SealError("checksum mismatch (edited or corrupt)")
    if seal_json(sealed) != data:
        raise SealError("bytes differ from the checksummed content (edited or corrupt)")
    return sealed
