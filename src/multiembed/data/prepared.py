"""A prepared data directory: written whole, checksummed, read back through one verified reader.

`prepare` fills a staging directory beside its output (`stage`), lists the
SHA-256 and size of every file it wrote in ``manifest.json`` (`write_manifest`),
flushes it all to disk and renames it into place (`commit`): the previous
directory is moved aside first and deleted after. A reader finds the old
complete directory or the new complete one (or, for the instant between the two
renames, none), never new engagements beside old items; a prepare killed
midway leaves the old directory as it was.

`read_prepared_table` is how the library reads a canonical table back. What
it does depends on what the directory holds:

- ``manifest.json``: the file must match its size and SHA-256 there;
- ``report.json`` but no manifest: written by a version of `prepare` that
  kept no checksums, or left by a prepare that failed; refused, saying so;
- neither: canonical tables written by another tool (the schema is a public
  contract), read as they are.

Example:
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "data"
    >>> staging = stage(out)
    >>> pq.write_table(pa.table({"item_id": [0, 1]}), staging / "items.parquet")
    >>> write_manifest(staging)
    >>> commit(staging, out)
    >>> read_prepared_table(out, "items.parquet").column("item_id").to_pylist()
    [0, 1]
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from multiembed._files import atomic_write_bytes, fsync_dir, pid_alive, sha256_file
from multiembed.data.schema import (
    ENGAGEMENTS_FILE,
    ITEMS_FILE,
    MANIFEST_FILE,
    QUARANTINE_FILE,
    REPORT_FILE,
    USER_TOPICS_FILE,
    VOCAB_DIR,
)
from multiembed.errors import DataError, InputFileError

FORMAT = "multiembed-prepared"
FORMAT_VERSION = 1

#: Entries a prepared directory may hold besides the files its manifest lists:
#: the synthetic world's ground truth and the training examples cache.
_OWN_ENTRIES = frozenset(
    {
        ENGAGEMENTS_FILE,
        ITEMS_FILE,
        USER_TOPICS_FILE,
        QUARANTINE_FILE,
        REPORT_FILE,
        MANIFEST_FILE,
        VOCAB_DIR,
        "ground_truth",
        ".cache",
    }
)
_RERUN = "re-run `multiembed prepare` to write it again"


# ---------------------------------------------------------------- writing


def stage(out_dir: Path) -> Path:
    """A new, empty staging directory beside `out_dir` (which `commit` will replace).

    Leftovers of earlier prepares that were killed are removed first.

    Raises:
        DataError: `out_dir` exists and is not a directory `prepare` may replace
            (see `check_replaceable`).
    """
    out_dir = _target(out_dir)
    check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out_dir)
    path = _sibling(out_dir, "staging")
    path.mkdir()
    return path


def write_manifest(staging: Path) -> None:
    """Flushes every file under `staging` to disk and lists its SHA-256 and size in the manifest."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        name = path.relative_to(staging).as_posix()
        if name == MANIFEST_FILE:
            continue
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    for folder in sorted({p.parent for p in staging.rglob("*")}, reverse=True):
        fsync_dir(folder)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "files": files}
    atomic_write_bytes(staging / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())


def commit(staging: Path, out_dir: Path) -> None:
    """Renames the complete `staging` directory to `out_dir`, replacing what was there."""
    out_dir = _target(out_dir)
    fsync_dir(staging)
    aside = None
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    elif out_dir.exists():
        check_replaceable(out_dir)
        aside = _sibling(out_dir, "old")
        os.rename(out_dir, aside)
    os.rename(staging, out_dir)
    fsync_dir(out_dir.parent)
    if aside is not None:
        shutil.rmtree(aside)


def discard(staging: Path) -> None:
    """Removes an unfinished staging directory."""
    shutil.rmtree(staging, ignore_errors=True)


def check_replaceable(out_dir: Path) -> None:
    """Refuses an `out_dir` that holds anything but an earlier prepare's output.

    `prepare` replaces its output directory as a whole, so a directory with
    other files in it (the raw source, runs, notes) must not be its target.

    Raises:
        DataError: naming the entries `prepare` did not write.
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a directory (expected a directory to write)")
    own = _OWN_ENTRIES | {name.split("/")[0] for name in _manifest_files(out_dir) or {}}
    foreign = sorted(
        p.name
        for p in out_dir.iterdir()
        if p.name not in own and not p.name.startswith(".staging-")
    )
    if foreign:
        listed = ", ".join(foreign[:8]) + (", ..." if len(foreign) > 8 else "")
        raise DataError(
            f"{out_dir}: holds files that prepare did not write ({listed}); prepare replaces "
            "its output directory as a whole, so choose a new or empty directory"
        )


def _target(out_dir: Path) -> Path:
    """`out_dir`, or the directory it links to (the link itself is kept)."""
    return out_dir.resolve() if out_dir.is_symlink() else out_dir


def _sibling(out_dir: Path, kind: str) -> Path:
    return out_dir.parent / f".{out_dir.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _remove_leftovers(out_dir: Path) -> None:
    """Deletes staging and set-aside directories of `out_dir` whose prepare is no longer running."""
    for kind in ("staging", "old"):
        for path in out_dir.parent.glob(f".{glob.escape(out_dir.name)}.{kind}-*"):
            pid = path.name.rsplit("-", 2)[-2]
            # this process is not preparing that directory any more
            running = pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid))
            if path.is_dir() and not running:
                shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- reading


def read_prepared_table(
    data_dir: Path, name: str, *, columns: Sequence[str] | None = None
) -> pa.Table:
    """Reads canonical table `name` of `data_dir`, verified against the directory's manifest.

    Args:
        data_dir: a directory written by `prepare` (or by another tool; see the
            module docstring).
        name: file name inside it, e.g. ``"engagements.parquet"``.
        columns: columns to read (all when None).

    Raises:
        InputFileError: the file is missing or not a readable Parquet file
            with these columns.
        DataError: the file does not match its checksum (changed or damaged
            since prepare wrote it), is not in the manifest, the directory was
            prepared without checksums, or the prepare that wrote it failed.
    """
    path = data_dir / name
    if not path.is_file():
        raise InputFileError(path, "missing", expected="a data directory written by `prepare`")
    expected = _manifest_files(data_dir)
    if expected is not None:
        _verify(data_dir, name, expected)
    elif (data_dir / REPORT_FILE).is_file():
        raise DataError(f"{path}: {_no_manifest(data_dir)}")
    try:
        return pq.read_table(path, columns=None if columns is None else list(columns))
    except (pa.ArrowException, OSError) as err:
        raise InputFileError(path, f"is not a readable Parquet file ({err})") from None


def _manifest_files(data_dir: Path) -> dict[str, Any] | None:
    """The manifest's files of `data_dir`, or None when it has no manifest."""
    path = data_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            raise ValueError("not a prepared data manifest")
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: damaged ({err}); {_RERUN}") from None
    return files


def _verify(data_dir: Path, name: str, files: dict[str, Any]) -> None:
    path = data_dir / name
    entry = files.get(name)
    if not isinstance(entry, dict):
        raise DataError(f"{path}: not listed in {data_dir / MANIFEST_FILE}; {_RERUN}")
    size = path.stat().st_size
    if size != entry.get("bytes"):
        raise DataError(
            f"{path}: {size} bytes, but prepare wrote {entry.get('bytes')} "
            f"(see {MANIFEST_FILE}); the file changed or is damaged: {_RERUN}"
        )
    if sha256_file(path) != entry.get("sha256"):
        raise DataError(
            f"{path}: does not match its SHA-256 in {MANIFEST_FILE}; the file changed or is "
            f"damaged since prepare wrote it: {_RERUN}"
        )


def _no_manifest(data_dir: Path) -> str:
    """Why a directory with a report but no manifest is refused."""
    try:
        failure = json.loads((data_dir / REPORT_FILE).read_text(encoding="utf-8")).get("error")
    except (ValueError, OSError, AttributeError):
        failure = None
    if failure:
        return f"the prepare that wrote {data_dir} failed ({failure}); fix the input and {_RERUN}"
    return f"{data_dir} has no {MANIFEST_FILE} (prepared without checksums); {_RERUN}"
