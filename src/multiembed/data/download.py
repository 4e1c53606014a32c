"""Downloading official public dataset releases, verified by SHA-256.

The archive is streamed to a temporary file next to its destination while its
SHA-256 is computed, checked against a table of known checksums, renamed into
place atomically and unpacked into `to_dir/<name>`. A mismatch deletes the
download and raises `DownloadError`; no partial file is left behind. Only the
standard library is used (urllib, hashlib, zipfile).

Taobao UserBehavior cannot be fetched without a login: `download("taobao", ...)`
raises an error saying where to get it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from multiembed._files import sha256_file
from multiembed.errors import MultiembedError

_GROUPLENS = "https://files.grouplens.org/datasets"
_CHUNK = 1 << 20


class DownloadError(MultiembedError):
    """A release cannot be downloaded, fails its checksum or cannot be unpacked."""


@dataclass(frozen=True)
class Release:
    """One downloadable release: where it lives, its checksum, how to read it.

    Attributes:
        url: the official archive URL.
        sha256: hex SHA-256 of the archive, or None when not known (the
            download is then not verified and a warning prints its checksum).
        adapter: the `multiembed prepare --dataset` name that reads it.
    """

    url: str
    sha256: str | None
    adapter: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


#: Known releases. Checksums of the GroupLens archives as published in the
#: TensorFlow Datasets checksum table (movielens) and verified by several
#: independent projects (hetrec2011-lastfm-2k). `ml-latest-small` is a rolling
#: release pinned at its 2018-09-26 snapshot.
_MOVIELENS_SHA256 = {
    "ml-latest-small": "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    "ml-100k": "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    "ml-1m": "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
    "ml-20m": "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
    "ml-25m": "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
}
RELEASES: Mapping[str, Release] = {
    **{
        name: Release(f"{_GROUPLENS}/movielens/{name}.zip", sha256, "movielens")
        for name, sha256 in _MOVIELENS_SHA256.items()
    },
    "hetrec2011-lastfm-2k": Release(
        f"{_GROUPLENS}/hetrec2011/hetrec2011-lastfm-2k.zip",
        "6738f48195667ff03caaab4d32ca9a3133d8cc026b7c3cdaf6ce1010e913c59c",
        "lastfm",
    ),
}

#: Releases that cannot be downloaded automatically, and where to get them.
MANUAL: Mapping[str, str] = {
    "taobao": (
        "Taobao UserBehavior needs a Tianchi login: download UserBehavior.csv from "
        "https://tianchi.aliyun.com/dataset/649, put it in a folder and run "
        "`multiembed prepare --dataset taobao --source FOLDER`"
    ),
}


def download(
    name: str,
    to_dir: Path,
    *,
    base_url: str | None = None,
    progress: bool = True,
    checksums: Mapping[str, str | None] | None = None,
) -> Path:
    """Downloads release `name`, verifies it and unpacks it into `to_dir/name`.

    Args:
        name: a key of `RELEASES` (e.g. "ml-latest-small", "hetrec2011-lastfm-2k").
        to_dir: destination folder (created if needed).
        base_url: fetch `<base_url>/<archive name>` instead of the official URL
            (a mirror, or a local server in tests).
        progress: print download progress to stderr.
        checksums: overrides of the expected SHA-256 per release name; None as a
            value skips verification for that release (with a warning).

    Returns:
        The folder holding the release's files (pass it as `--source`).

    Raises:
        DownloadError: unknown or not downloadable name, network failure,
            checksum mismatch, or a bad archive.
    """
    if name in MANUAL:
        raise DownloadError(f"{name}: cannot be downloaded automatically. {MANUAL[name]}")
    if name not in RELEASES:
        known = ", ".join([*RELEASES, *MANUAL])
        raise DownloadError(f"unknown dataset {name!r}: expected one of {known}")
    release = RELEASES[name]
    expected = checksums[name] if checksums is not None and name in checksums else release.sha256
    url = f"{base_url.rstrip('/')}/{release.filename}" if base_url else release.url
    target = to_dir / name
    if target.is_dir() and any(target.iterdir()):
        _say(progress, f"{name}: already present in {target}")
        return target
    to_dir.mkdir(parents=True, exist_ok=True)
    archive = to_dir / release.filename
    if not (archive.is_file() and expected is not None and sha256_file(archive) == expected):
        _fetch(url, archive, expected, progress=progress)
    _unpack(archive, target)
    _say(progress, f"{name}: unpacked into {target}")
    return target


def _fetch(url: str, archive: Path, expected: str | None, *, progress: bool) -> None:
    """Streams `url` into a temporary file, checks its SHA-256, renames it to `archive`."""
    fd, tmp_name = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=60)
            except (urllib.error.URLError, OSError) as err:
                raise DownloadError(f"could not download {url}: {err}") from None
            with response:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    _progress(progress, url, done, total)
        if progress:
            print(file=sys.stderr)
        got = digest.hexdigest()
        if expected is None:
            warnings.warn(
                f"{url}: no known checksum, so the download was NOT verified; its SHA-256 is {got}",
                UserWarning,
                stacklevel=3,
            )
        elif got != expected.lower():
            raise DownloadError(
                f"{url}: SHA-256 mismatch (expected {expected}, got {got}); the download was "
                "deleted. A corrupted transfer or a changed release: retry, or pass the new "
                "checksum after checking it"
            )
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)


def _unpack(archive: Path, target: Path) -> None:
    """Unzips `archive` into `target` (a single top-level folder is unwrapped)."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.unpack-"))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    dest = (staging / member).resolve()
                    if not dest.is_relative_to(staging.resolve()):
                        raise DownloadError(f"{archive}: unsafe path {member!r} in the archive")
                zf.extractall(staging)
        except zipfile.BadZipFile as err:
            archive.unlink(missing_ok=True)
            raise DownloadError(f"{archive}: not a valid zip archive ({err}); deleted") from None
        entries = [p for p in staging.iterdir() if p.name != "__MACOSX"]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        if target.exists():
            target.rmdir()  # only an empty folder gets here
        os.replace(root, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _progress(enabled: bool, url: str, done: int, total: int) -> None:
    if not enabled:
        return
    of = f" / {total / 2**20:.1f}" if total else ""
    print(f"\r{url}: {done / 2**20:.1f}{of} MiB", end="", file=sys.stderr, flush=True)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr)


__all__ = ["MANUAL", "RELEASES", "DownloadError", "Release", "download"]
