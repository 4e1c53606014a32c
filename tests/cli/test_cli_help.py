"""What ``--help`` tells: every experiment by name, and which options a command needs."""

from __future__ import annotations

from typer.testing import CliRunner

from multiembed.cli.main import app
from multiembed.experiments import EXPERIMENTS


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())  # panels wrap and pad: compare words


def test_experiment_help_lists_every_experiment_with_its_description() -> None:
    text = _help("experiment")
    assert "..." not in text
    for name, description in EXPERIMENTS.items():
        assert f"{name}: {description}" in text
