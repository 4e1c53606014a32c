"""Downloading releases: checksum verified, atomic, unpacked; tested on a local server only."""

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from multiembed.data.adapters.movielens import MovieLensAdapter
from multiembed.data.download import RELEASES, DownloadError, download
from multiembed.data.quarantine import Quarantine

MOVIES = "movieId,title,genres\n1,Toy Story (1995),Animation\n"
RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server (127.0.0.1, random port) serving files from a folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/datasets", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _zip(path: Path, members: dict[str, str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ml_small(root: Path) -> str:
    return _zip(
        root / "datasets" / "ml-latest-small.zip",
        {"ml-latest-small/movies.csv": MOVIES, "ml-latest-small/ratings.csv": RATINGS},
    )


def test_verified_download_unpacks_a_readable_release(served, tmp_path):
    base_url, root = served
    sha = _ml_small(root)
    dest = tmp_path / "data"
    path = download(
        "ml-latest-small",
        dest,
        base_url=base_url,
        progress=False,
        checksums={"ml-latest-small": sha},
    )
    assert path == dest / "ml-latest-small"
    assert (path / "ratings.csv").read_text() == RATINGS
    assert sorted(p.name for p in dest.iterdir()) == ["ml-latest-small", "ml-latest-small.zip"]
    raw = MovieLensAdapter().read(path, Quarantine())  # the adapter reads what was fetched
    assert raw.name == "movielens"

    # Already present: returned as is, nothing fetched (the server is not needed).
    again = download("ml-latest-small", dest, base_url="http://127.0.0.1:9", progress=False)
    assert again == path


def test_checksum_mismatch_leaves_nothing_behind(served, tmp_path):
    base_url, root = served
    _ml_small(root)
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="SHA-256 mismatch") as err:
        download(
            "ml-latest-small",
            dest,
            base_url=base_url,
            progress=False,
            checksums={"ml-latest-small": "0" * 64},
        )
    assert f"expected {'0' * 64}" in str(err.value)
    assert list(dest.iterdir()) == []  # no partial or unverified file


def test_unknown_checksum_warns_with_the_computed_one(served, tmp_path):
    base_url, root = served
    sha = _zip(root / "datasets" / "hetrec2011-lastfm-2k.zip", {"artists.dat": "id\n1\n"})
    with pytest.warns(UserWarning, match=f"NOT verified; its SHA-256 is {sha}"):
        path = download(
            "hetrec2011-lastfm-2k",
            tmp_path,
            base_url=base_url,
            progress=False,
            checksums={"hetrec2011-lastfm-2k": None},
        )
    # Files at the archive's root are unpacked into a folder named after the release.
    assert (path / "artists.dat").read_text() == "id\n1\n"
    assert path == tmp_path / "hetrec2011-lastfm-2k"


def test_progress_goes_to_stderr(served, tmp_path, capsys):
    base_url, root = served
    sha = _ml_small(root)
    download("ml-latest-small", tmp_path, base_url=base_url, checksums={"ml-latest-small": sha})
    captured = capsys.readouterr()
    assert "MiB" in captured.err
    assert captured.out == ""


def test_unsafe_archive_is_refused(served, tmp_path):
    base_url, root = served
    sha = _zip(root / "datasets" / "ml-100k.zip", {"../evil.txt": "x"})
    with pytest.raises(DownloadError, match="unsafe path"):
        download(
            "ml-100k", tmp_path / "d", base_url=base_url, progress=False, checksums={"ml-100k": sha}
        )
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "d" / "ml-100k").exists()


def test_network_errors_are_download_errors(served, tmp_path):
    base_url, _ = served  # the archive is not there: HTTP 404
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"could not download .*ml-1m\.zip"):
        download("ml-1m", dest, base_url=base_url, progress=False)
    assert list(dest.iterdir()) == []


def test_names_without_a_download():
    with pytest.raises(DownloadError, match=r"tianchi\.aliyun\.com"):
        download("taobao", Path("unused"))
    with pytest.raises(DownloadError, match=r"unknown dataset 'ml-2m'.*ml-latest-small"):
        download("ml-2m", Path("unused"))


def test_every_release_has_an_official_https_url_and_a_checksum():
    for name, release in RELEASES.items():
        assert release.url.startswith("https://files.grouplens.org/datasets/"), name
        assert release.filename == f"{name}.zip"
        assert release.sha256 is not None, name
        assert len(release.sha256) == 64, name
