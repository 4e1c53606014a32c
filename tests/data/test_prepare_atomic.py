"""Prepare replaces its output directory whole: a prepare killed midway leaves the old one."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from multiembed.config import DataConfig
from multiembed.data.prepare import prepare
from multiembed.data.prepared import read_prepared_table
from multiembed.errors import DataError
from tests.data.prepared_helpers import tiny_raw as _raw

# `multiembed.data` re-exports the function `prepare` under the module's name.
PREPARE = sys.modules["multiembed.data.prepare"]


def _snapshot(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


@pytest.mark.parametrize("fails_in", ["_write_items", "_write_user_topics", "write_manifest"])
def test_a_prepare_killed_midway_leaves_the_old_directory_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails_in: str
):
    out = tmp_path / "data"
    prepare(_raw(4), out, config=DataConfig())
    before = _snapshot(out)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what the process sees of a Ctrl-C

    with monkeypatch.context() as patch:
        patch.setattr(PREPARE, fails_in, killed)
        with pytest.raises(KeyboardInterrupt):
            prepare(_raw(9), out, config=DataConfig())
    assert _snapshot(out) == before
    assert _siblings(out) == []  # the staging directory is gone
    assert read_prepared_table(out, "items.parquet").num_rows == 4

    report = prepare(_raw(9), out, config=DataConfig())
    assert report["counts"]["items"] == 9
    assert read_prepared_table(out, "items.parquet").num_rows == 9
    assert read_prepared_table(out, "engagements.parquet").num_rows == 27


def test_leftovers_of_a_killed_prepare_do_not_break_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "data"
    prepare(_raw(4), out, config=DataConfig())

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    # SIGKILL runs no cleanup: the staging directory stays behind.
    with monkeypatch.context() as patch:
        patch.setattr(PREPARE, "discard", lambda staging: None)
        patch.setattr(PREPARE, "_write_items", killed)
        with pytest.raises(KeyboardInterrupt):
            prepare(_raw(9), out, config=DataConfig())
    (left,) = _siblings(out)
    assert left.startswith(".data.staging-")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (tmp_path / left).rename(tmp_path / f".data.staging-{gone}-0000")  # its process has ended
    running = tmp_path / f".data.staging-{os.getppid()}-1111"  # another prepare, still running
    running.mkdir()

    prepare(_raw(9), out, config=DataConfig())
    assert _siblings(out) == [running.name]
    assert read_prepared_table(out, "items.parquet").num_rows == 9


def test_prepare_replaces_its_own_output_only(tmp_path: Path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"data: holds files that prepare did not write \(notes"):
        prepare(_raw(4), out, config=DataConfig())
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert _siblings(out) == []

    (out / "notes.txt").unlink()
    prepare(_raw(4), out, config=DataConfig())
    (out / ".cache").mkdir()  # the training examples cache lives beside the tables
    prepare(_raw(5), out, config=DataConfig())
    assert not (out / ".cache").exists()  # it described the old tables
    assert read_prepared_table(out, "items.parquet").num_rows == 5
