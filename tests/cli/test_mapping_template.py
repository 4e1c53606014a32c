"""`multiembed mapping template` and the mapping reference: every key documented, nothing stale."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from typer.testing import CliRunner

from multiembed.cli.main import app
from multiembed.data.adapters._mapping import EXTRA_KEYS
from multiembed.data.adapters.generic import (
    ColumnMapping,
    ItemsMapping,
    TopicsMapping,
    UserTopicsMapping,
    read_mapping_file,
)
from multiembed.data.adapters.template import MAPPING_KEYS, mapping_reference, mapping_template

README = Path(__file__).resolve().parents[2] / "README.md"


def _read_keys() -> set[str]:
    """Every key the mapping reader accepts, as `table.key` (top-level keys bare)."""
    top = {f.name for f in fields(ColumnMapping) if f.name != "action_map"} | set(EXTRA_KEYS)
    tables = {"items": ItemsMapping, "topics": TopicsMapping, "user_topics": UserTopicsMapping}
    nested = {f"{t}.{f.name}" for t, cls in tables.items() for f in fields(cls)}
    return top | nested


def test_the_documented_keys_are_exactly_the_keys_read():
    documented = {k.name for k in MAPPING_KEYS if k.table != "action_map"}
    assert documented == _read_keys()
    assert any(k.table == "action_map" for k in MAPPING_KEYS)


def test_the_template_is_a_valid_mapping_with_every_table(tmp_path):
    path = tmp_path / "mapping.toml"
    path.write_text(mapping_template())
    spec = read_mapping_file(path)
    assert spec.mapping.user == "customer"
    assert spec.mapping.action_map == {"clk": "click"}
    assert spec.items is not None
    assert spec.items.vector == ("f0", "f1", "f2", "f3")
    assert spec.topics is not None
    assert spec.topics.file == tmp_path / "topics.csv"
    assert spec.user_topics is not None
    assert spec.user_topics.followed_at == "since"
    text = mapping_template()
    for key in MAPPING_KEYS:  # commented-out keys are shown too
        assert f"{key.key} = {key.example}" in text


def test_the_readme_holds_the_generated_reference():
    assert mapping_reference() in README.read_text(encoding="utf-8"), (
        "README's mapping reference is stale: paste mapping_reference() into 'Your own data'"
    )


def test_cli_writes_the_template_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "mapping.toml"
    runner = CliRunner()
    result = runner.invoke(app, ["mapping", "template", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == mapping_template()
    assert "multiembed prepare --dataset csv" in result.output
    again = runner.invoke(app, ["mapping", "template", "--out", str(out)])
    assert again.exit_code == 2
    assert "the file exists" in again.output
    printed = runner.invoke(app, ["mapping", "template"])
    assert printed.exit_code == 0
    assert printed.output == mapping_template()


def test_prepare_help_points_to_the_template():
    result = CliRunner().invoke(app, ["prepare", "--help"], env={"COLUMNS": "200"})
    assert "multiembed mapping template" in result.output
