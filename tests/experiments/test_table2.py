"""Table 2 on the tiny world: two associations, one seed, the Markdown's rows."""

from __future__ import annotations

from pathlib import Path

from multiembed.experiments import table2
from tests.experiments.experiment_helpers import tiny_config


def test_table2_writes_the_paper_structure(tiny_data: Path, tmp_path: Path):
    path = table2.run(tiny_data, tmp_path, config=tiny_config(), seeds=(0,), progress=False)
    assert path == tmp_path / "table2.md"
    text = path.read_text()
    assert "| Association | Filtered HR@100 | Filtered HR@1000 | HR@100 |" in text
    assert "| CR w/ item interest (all engagements) | " in text
    assert "| CR w/ item interest (logged engagements) | " in text
    assert "| CR w/ source interest | " in text
    for segment in ("core", "non-core", "new"):
        assert f"| {segment} | CR w/ source interest |" in text
    assert "## Explicit / implicit candidate overlap" in text
    assert "| all | " in text
    assert "Without condition (not trained on)" in text
    for run in ("cr_item-seed0", "cr_item_logged-seed0", "cr_source-seed0", "dcm-seed0"):
        assert (tmp_path / "runs" / run / "manifest.json").is_file()
    assert (tmp_path / "overlap.json").is_file()
