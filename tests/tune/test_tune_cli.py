"""The command: a bad space is a message naming key and rule with exit 2; help stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.train.train_helpers import run_cli


def test_a_bad_space_is_one_message_without_a_traceback(tmp_path: Path, tiny_data: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text(
        '[search]\ntrials = 0\nmetric = "hr@100"\n[search.space]\n'
        '"model.temprature" = { low = 0.1, high = 0.5 }\n'
        '"train.lr" = { low = 0.01, high = 0.001 }\n',
        encoding="utf-8",
    )
    done = run_cli(
        "tune",
        "--data",
        str(tiny_data),
        "--space",
        str(space),
        "--out",
        str(tmp_path / "o"),
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"error: invalid configuration in {space} (3 problem(s)):" in done.stderr
    assert "search.trials = 0: must be an integer from 1 to 100_000" in done.stderr
    assert (
        'search.space."model.temprature": unknown setting (did you mean model.temperature?)'
        in done.stderr
    )
    assert 'search.space."train.lr": low (0.01) must be < high (0.001)' in done.stderr
    assert not (tmp_path / "o").exists()  # nothing written before the space is checked


def test_help_loads_neither_optuna_nor_torch() -> None:
    code = (
        "import sys, json\n"
        "sys.argv = ['multiembed', 'tune', '--help']\n"
        "from multiembed.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps([m for m in ('optuna', 'torch', 'sqlalchemy') if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--space" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
