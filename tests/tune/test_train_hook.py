"""`train(on_validation=...)`: each logged validation is handed over; raising ends the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multiembed.config import Config
from multiembed.train import Validation, train
from multiembed.tune import configured


class Stop(Exception):
    pass


def _validations(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines if '"validation"' in x]


def test_the_hook_sees_every_validation_the_log_records(
    tiny_data: Path, base: Config, tmp_path: Path
) -> None:
    seen: list[tuple[int, Validation]] = []
    config = configured(base, {"train.max_steps": 15, "train.validate_every": 5})
    train(
        config,
        tiny_data,
        tmp_path / "run",
        progress=False,
        on_validation=lambda s, v: seen.append((s, v)),
    )
    logged = _validations(tmp_path / "run")
    assert [s for s, _ in seen] == [line["step"] for line in logged] == [5, 10, 15]
    assert [v.metrics for _, v in seen] == [line["validation"] for line in logged]
    assert (tmp_path / "run" / "manifest.json").is_file()


def test_an_exception_from_the_hook_ends_the_run_unfinished(
    tiny_data: Path, base: Config, tmp_path: Path
) -> None:
    config = configured(base, {"train.max_steps": 15, "train.validate_every": 5})
    calls: list[int] = []

    def stop_at_second(step: int, validation: Validation) -> None:
        calls.append(step)
        if len(calls) == 2:
            raise Stop

    run = tmp_path / "run"
    with pytest.raises(Stop):
        train(config, tiny_data, run, progress=False, on_validation=stop_at_second)
    assert calls == [5, 10]
    assert [line["step"] for line in _validations(run)] == [5, 10]
    assert not (run / "manifest.json").exists()  # not a finished run
