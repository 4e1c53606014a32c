"""`run_jobs`: runs spread over worker processes give the results of one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiembed.errors import DataError
from multiembed.experiments._runs import run_jobs, with_overrides
from tests.experiments.experiment_helpers import tiny_config


def test_workers_reproduce_the_sequential_runs(tiny_data: Path, tmp_path: Path):
    jobs = [
        ("single", tiny_config(name="single")),
        ("dcm", with_overrides(tiny_config(name="dcm"), {"train": {"max_steps": 10}})),
    ]
    one = run_jobs(jobs, tiny_data, tmp_path / "one", (0, 1), progress=False)
    two = run_jobs(jobs, tiny_data, tmp_path / "two", (0, 1), progress=False, workers=2)
    assert list(two) == ["single", "dcm"]
    for label in ("single", "dcm"):
        assert [r.run_dir.name for r in two[label]] == [f"{label}-seed0", f"{label}-seed1"]
        for a, b in zip(one[label], two[label], strict=True):
            assert a.training["final_loss"] == b.training["final_loss"]
            assert a.report["segments"] == b.report["segments"]
    assert two["dcm"][0].training["steps"] == 10


def test_a_failing_run_in_a_worker_is_a_clear_error(tmp_path: Path):
    jobs = [("single", tiny_config(name="single")), ("dcm", tiny_config(name="dcm"))]
    with pytest.raises(DataError, match=r"^(single|dcm), seed 0: .*missing"):
        run_jobs(jobs, tmp_path / "missing", tmp_path / "out", (0,), progress=False, workers=2)
