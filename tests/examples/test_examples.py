"""Every script in examples/ runs to the end on tiny data, in a child process, in bounded time.

``own_csv_end_to_end.py`` runs once into a temporary directory, and the examples
that read its outputs (``faiss_search.py``, ``serve_and_query.py``) are pointed at
them; any other script runs with no arguments and prepares its own tiny data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OWN_CSV = "own_csv_end_to_end.py"
READS_OWN_CSV = ("faiss_search.py", "serve_and_query.py")
TIMEOUT_S = 120  # each script takes 2-30 s on an idle core; a loaded CI box is slower


def run_example(name: str, *args: str | Path) -> str:
    """Run ``examples/NAME ARGS`` with torch single-threaded; returns its stdout."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def others() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in (OWN_CSV, *READS_OWN_CSV))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The output directory of ``own_csv_end_to_end.py`` and what it printed."""
    out = tmp_path_factory.mktemp("shop")
    return out, run_example(OWN_CSV, "--out", out)


def test_every_example_is_run_here() -> None:
    names = {p.name for p in EXAMPLES.glob("*.py")}
    assert {OWN_CSV, *READS_OWN_CSV} <= names
    assert set(others()) == names - {OWN_CSV, *READS_OWN_CSV}


def test_own_csv_end_to_end(shop: tuple[Path, str]) -> None:
    out, printed = shop
    report = json.loads((out / "data" / "report.json").read_text())
    assert report["counts"]["users"] == 120
    assert report["counts"]["items"] == 240
    assert sum(t["rows_quarantined"] for t in report["tables"].values()) == 0
    assert (out / "run" / "eval.json").is_file()
    items = pq.read_table(out / "export" / "items.parquet")
    assert items.num_rows == 240
    assert all(re.fullmatch(r"[a-z]+-\d{3}", i) for i in items.column("item_id").to_pylist())
    users = pq.read_table(out / "export" / "users.parquet")
    assert set(users.column("user_id").to_pylist()) == {"c0000", "c0001"}
    assert "exported D = 16" in printed


def test_faiss_search(shop: tuple[Path, str]) -> None:
    out, _ = shop
    printed = run_example("faiss_search.py", "--export", out / "export", "--budget", "8")
    items = re.findall(r"^\s*\d+\. (\S+) +from embedding", printed, flags=re.M)
    assert len(items) == len(set(items)) == 8  # the budget, deduplicated
    assert "user c0000:" in printed


def test_serve_and_query(shop: tuple[Path, str]) -> None:
    out, _ = shop
    printed = run_example(
        "serve_and_query.py",
        *("--run", out / "run", "--data", out / "data", "--user", "c0001", "--budget", "6"),
    )
    assert "user c0001:" in printed
    items = re.findall(r"^\s*\d+\. (\S+) +list \d+ rank", printed, flags=re.M)
    assert len(items) == len(set(items)) == 6


@pytest.mark.parametrize("name", others())
def test_other_example(name: str) -> None:
    run_example(name)
