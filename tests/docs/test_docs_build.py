"""The documentation site builds with ``mkdocs build --strict``, offline, from the checkout.

Strict mode turns every warning into a failure: a broken link, a page missing
from the navigation, a docstring whose arguments do not match its signature.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_every_page_is_built(site: Path) -> None:
    pages = ("api", "config", "benchmarks", "reproduce")
    for page in ("index.html", *(f"{name}/index.html" for name in pages)):
        assert (site / page).is_file(), page


def test_the_api_reference_comes_from_the_docstrings(site: Path) -> None:
    text = (site / "api" / "index.html").read_text()
    anchors = set(re.findall(r'id="(multiembed\.[\w.]+)"', text))
    functions = {
        f"multiembed.api.{f}" for f in ("prepare", "train", "evaluate", "export", "retrieve")
    }
    results = {"multiembed.api.Prepared", "multiembed.train.TrainResult", "multiembed.serve.Served"}
    assert functions | results <= anchors
    assert "Validate a source into canonical Parquet tables" in text  # prepare's docstring


def test_pages_load_nothing_from_the_network(site: Path) -> None:
    remote = re.compile(r"<(?:script|link|img)\b[^>]*(?:src|href)=\"(?:https?:)?//", re.I)
    for page in site.rglob("*.html"):
        assert not remote.search(page.read_text()), page


def test_the_benchmark_tables_are_the_readmes() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    rows = [
        line for line in (ROOT / "docs/benchmarks.md").read_text().splitlines() if line[:1] == "|"
    ]
    assert len(rows) >= 14
    assert [line for line in rows if line not in readme] == []
