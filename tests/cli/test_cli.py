"""The command line: clear messages and non-zero exits on bad input, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multiembed", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: ")
    for needle in needles:
        assert needle in result.stderr


def test_unknown_dataset(tmp_path: Path):
    result = run_cli("prepare", "--dataset", "nope", "--out", str(tmp_path / "o"), cwd=tmp_path)
    _assert_clean_failure(result, 'dataset = "nope": must be one of synthetic, movielens')


def test_bad_config_file_lists_every_problem(tmp_path: Path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[synthetic]\nn_users = 0\nlegacy_share = 2\n[split]\ncolour = 1\n")
    result = run_cli(
        "prepare",
        "--dataset",
        "synthetic",
        "--out",
        str(tmp_path / "o"),
        "--config",
        str(cfg),
        cwd=tmp_path,
    )
    _assert_clean_failure(
        result,
        f"invalid configuration in {cfg} (3 problem(s))",
        "synthetic.n_users = 0: must be > 0",
        "synthetic.legacy_share = 2.0: must be between 0.0 and 1.0",
        "split.colour = 1: unknown key",
    )


@pytest.mark.parametrize(
    ("layout", "needle"),
    [
        (
            {"ratings.csv": b"", "movies.csv": b"movieId,title,genres\n1,A,Drama\n"},
            "ratings.csv: file is empty",
        ),
        ({"ratings.csv": b"userId,movieId,rating,timestamp\n"}, "but no movies.csv"),
        (
            {"ratings.csv": b"userId,movieId\n1,2\n", "movies.csv": b"movieId,title,genres\n"},
            "missing column",
        ),
    ],
)
def test_file_level_defects_are_one_message(tmp_path: Path, layout, needle):
    src = tmp_path / "src"
    src.mkdir()
    for name, content in layout.items():
        (src / name).write_bytes(content)
    result = run_cli(
        "prepare",
        "--dataset",
        "movielens",
        "--source",
        str(src),
        "--out",
        str(tmp_path / "o"),
        cwd=tmp_path,
    )
    _assert_clean_failure(result, needle)


def test_missing_source_folder(tmp_path: Path):
    result = run_cli(
        "prepare",
        "--dataset",
        "lastfm",
        "--source",
        str(tmp_path / "absent"),
        "--out",
        str(tmp_path / "o"),
        cwd=tmp_path,
    )
    _assert_clean_failure(result, str(tmp_path / "absent"))
