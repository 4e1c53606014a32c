"""Durable file writes: temporary file, fsync, rename, directory fsync; SHA-256 of files."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


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

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    atomic_write(path, write)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x"
        >>> _ = p.write_bytes(b"abc")
        >>> sha256_file(p)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
