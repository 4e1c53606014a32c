"""Table 2 on the tiny world: two associations, one seed, the Markdown's rows and numbers.

Every number of ``table2.md`` is checked against the file it comes from: each
run's ``eval.json`` and ``manifest.json``, and ``overlap.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from multiembed.experiments import table2
from tests.experiments.experiment_helpers import tiny_config

LABELS = {
    "item": "CR w/ item interest (all engagements)",
    "item_logged": "CR w/ item interest (logged engagements)",
    "source": "CR w/ source interest",
}
METRICS = ("filtered_hr@100", "filtered_hr@1000", "explicit_hr@100")
SEGMENTS = {"core": "core", "non_core": "non-core", "new": "new"}


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """The Markdown tables of `text` in order: (header cells, rows of cells)."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(cells(row))
            out.append((cells(line), rows))
    return out


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


@pytest.fixture(scope="module")
def out(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("table2")
    path = table2.run(tiny_data, out, config=tiny_config(), seeds=(0,), progress=False)
    assert path == out / "table2.md"
    return out


def test_table2_writes_the_paper_structure(out: Path):
    text = (out / "table2.md").read_text()
    assert "| Association | Filtered HR@100 | Filtered HR@1000 | HR@100 |" in text
    assert "## Explicit / implicit candidate overlap" in text
    assert "Without condition (not trained on)" in text
    for run in ("cr_item-seed0", "cr_item_logged-seed0", "cr_source-seed0", "dcm-seed0"):
        assert (out / "runs" / run / "manifest.json").is_file()
    assert (out / "overlap.json").is_file()


def test_table2_numbers_come_from_the_runs(out: Path):
    main, by_segment, overlap_table, training_table = tables((out / "table2.md").read_text())
    reports = {a: load(out / "runs" / f"cr_{a}-seed0" / "eval.json") for a in LABELS}
    manifests = {a: load(out / "runs" / f"cr_{a}-seed0" / "manifest.json") for a in LABELS}

    # one row per association: its own evaluation's filtered and unfiltered HR
    assert main[0][0] == "Association"
    assert main[1] == [
        [LABELS[a], *(fmt(reports[a]["segments"]["all"]["metrics"][m]) for m in METRICS)]
        for a in LABELS
    ]
    # source against item interest on the same (logged) engagements, relative
    item, source = (reports[a]["segments"]["all"]["metrics"] for a in ("item_logged", "source"))
    lifts = [
        f"{name} {100 * (source[m] / item[m] - 1):+.1f}%"
        for m, name in zip(METRICS, main[0][1:], strict=True)
        if item[m] > 0
    ]
    assert lifts
    assert f"(relative): {', '.join(lifts)}." in (out / "table2.md").read_text()
    # by segment: the records with a logged topic and each association's numbers there
    assert by_segment[0][:3] == ["Segment", "Association", "Records"]
    assert by_segment[1] == [
        [
            label,
            LABELS[a],
            f"{reports['item']['segments'][seg]['n_explicit_hr_records']:,}",
            *(fmt(reports[a]["segments"][seg]["metrics"].get(m)) for m in METRICS),
        ]
        for seg, label in SEGMENTS.items()
        for a in LABELS
    ]
    records = sum(int(row[2]) for row in by_segment[1]) // len(LABELS)
    assert records == reports["item"]["segments"]["all"]["n_explicit_hr_records"] > 0

    overlap = load(out / "overlap.json")["segments"]
    assert overlap_table[0] == ["Segment", "Users", "Overlap"]
    assert overlap_table[1] == [
        [
            label,
            f"{overlap[seg]['n_overlap_users']:,}",
            "n/a"
            if overlap[seg]["metrics"]["overlap"] is None
            else f"{100 * overlap[seg]['metrics']['overlap']:.2f}%",
        ]
        for seg, label in {"all": "all", **SEGMENTS}.items()
    ]
    assert overlap["all"]["n_overlap_users"] > 0

    # training: 20 steps of 64; the item association on all engagements drops nothing,
    # the two runs on logged engagements drop the same examples (no logged topic)
    assert training_table[0][4] == "Without condition (not trained on)"
    training = {a: m["training"] for a, m in manifests.items()}
    for row, a in zip(training_table[1], LABELS, strict=True):
        t = training[a]
        without = t["examples_without_condition"]
        assert row == [
            LABELS[a],
            "0",
            "20",
            "1,280",
            f"{without:,} ({100 * without / 1280:.1f}%)",
            f"{t['skipped_batches']:,}",
            f"{t['final_loss']:.4f}",
        ]
    assert training["item"]["examples_without_condition"] == 0
    assert (
        training["item_logged"]["examples_without_condition"]
        == training["source"]["examples_without_condition"]
        > 0
    )
