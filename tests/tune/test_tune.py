"""`multiembed tune` end to end on the tiny world: the table, best.toml, pruning, resuming.

The space pits a learning rate that trains (0.01) against one that cannot (1e-7,
whose validation HR@100 stays at its initial 0.17 while the other passes 0.22 by
the second validation). With the seeded sampler the first two trials complete,
after which each 1e-7 trial falls below the median at its second validation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from multiembed.config import Config, load_config
from multiembed.errors import ConfigError
from multiembed.tune import TuneError, _study, configured, load_space, tune
from tests.train.train_helpers import run_cli

GOOD_LR, BROKEN_LR = 0.01, 1e-7
SPACE = f"""
[search]
trials = 4
metric = "hr@100"
seed = 0
startup_trials = 2
warmup = 1
[search.space]
"train.lr" = {{ choices = [{GOOD_LR}, {BROKEN_LR}] }}
"model.temperature" = {{ low = 0.1, high = 0.3, log = true }}
"""


@pytest.fixture(scope="module")
def space_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.toml"
    path.write_text(SPACE, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def searched(
    tiny_data: Path, base_file: Path, space_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """A four-trial search run through the command line: its directory and its output."""
    out = tmp_path_factory.mktemp("search") / "out"
    args = ["--data", str(tiny_data), "--space", str(space_file), "--config", str(base_file)]
    done = run_cli("tune", *args, "--out", str(out), "--no-progress", cwd=out.parent)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def _json(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_the_results_table_lists_every_trial(searched: tuple[Path, str]) -> None:
    out, stdout = searched
    results = _json(out)
    trials = results["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    assert results["metric"] == "hr@100"
    for t in trials:
        assert set(t) == {"number", "state", "values", "metric", "validations", "seconds", "note"}
        assert set(t["values"]) == {"train.lr", "model.temperature"}
        assert 0.1 <= t["values"]["model.temperature"] <= 0.3
        assert t["state"] in ("complete", "pruned")
        assert 0.0 <= t["metric"] <= 1.0
        assert t["seconds"] > 0
        assert (out / "trials" / f"{t['number']:03d}" / "metrics.jsonl").is_file()
    markdown = (out / "results.md").read_text(encoding="utf-8")
    head = (
        "| trial | state | train.lr | model.temperature | hr@100 | validations | seconds | note |"
    )
    assert head in markdown
    assert head in stdout  # the command prints the table
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(trials)
    assert (out / "study.db").is_file()


def test_a_clearly_worse_trial_is_pruned(searched: tuple[Path, str]) -> None:
    trials = _json(searched[0])["trials"]
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned
    for t in pruned:
        assert t["values"]["train.lr"] == BROKEN_LR
        assert t["validations"] == 2  # warmup = 1: the first validation is never pruned
        assert t["note"] == "below the median at validation 2"
    complete = [t for t in trials if t["state"] == "complete"]
    assert len(complete) == 2  # startup_trials = 2: nothing is pruned before two complete
    assert all(t["validations"] == 4 for t in complete)


def test_best_toml_is_the_best_trials_config(searched: tuple[Path, str], base: Config) -> None:
    out, stdout = searched
    results = _json(out)
    complete = [t for t in results["trials"] if t["state"] == "complete"]
    best = max(complete, key=lambda t: t["metric"])
    assert results["best_trial"] == best["number"]
    assert best["values"]["train.lr"] == GOOD_LR
    loaded = load_config(out / "best.toml")
    assert loaded == configured(base, best["values"])
    assert loaded.train.lr == best["values"]["train.lr"]
    assert loaded.model.temperature == best["values"]["model.temperature"]
    assert loaded.train.max_steps == base.train.max_steps  # the rest is the base config
    assert f"best: trial {best['number']}, hr@100 = {best['metric']:.4f}" in stdout
    # the kept run's validation shows the metric the trial reported
    lines = (out / "trials" / f"{best['number']:03d}" / "metrics.jsonl").read_text().splitlines()
    seen = [json.loads(x)["validation"]["hr@100"] for x in lines if '"validation"' in x]
    assert max(seen) == best["metric"]


def test_resuming_runs_only_the_missing_trials(
    searched: tuple[Path, str], tiny_data: Path, base: Config, space_file: Path
) -> None:
    out = searched[0]
    before = _json(out)["trials"]
    space = load_space(space_file, base)
    again = tune(tiny_data, space, out, config=base, progress=False)
    assert again.ran == 0
    assert [r.document() for r in again.records] == before
    more = tune(tiny_data, space, out, config=base, trials=5, progress=False)
    assert more.ran == 1
    assert [r.number for r in more.records] == [0, 1, 2, 3, 4]
    assert [r.document() for r in more.records[:4]] == before
    # the resumed sampler is seeded anew (seed + trials so far): no earlier draw repeats
    drawn = {r.values["model.temperature"] for r in more.records[:4]}
    assert more.records[4].values["model.temperature"] not in drawn
    assert len(_json(out)["trials"]) == 5


def test_another_space_on_the_same_directory_is_refused(
    searched: tuple[Path, str], tiny_data: Path, base: Config, space_file: Path
) -> None:
    other = space_file.parent / "other.toml"
    other.write_text(SPACE.replace("0.3, log", "0.4, log"), encoding="utf-8")
    with pytest.raises(TuneError, match="holds a search with another search space or metric"):
        tune(tiny_data, load_space(other, base), searched[0], config=base, progress=False)
    changed = configured(base, {"model.k": 2})
    with pytest.raises(TuneError, match="another base configuration; resume it with the same"):
        tune(tiny_data, load_space(space_file, base), searched[0], config=changed, progress=False)


def _one_trial_space(tmp_path: Path, base: Config, lr: float) -> Any:
    path = tmp_path / "space.toml"
    path.write_text(
        f'[search]\ntrials = 1\nmetric = "hr@100"\n[search.space]\n'
        f'"train.lr" = {{ choices = [{lr}] }}\n',
        encoding="utf-8",
    )
    return load_space(path, base)


def test_a_diverging_trial_fails_with_its_reason(
    tiny_data: Path, base: Config, tmp_path: Path
) -> None:
    result = tune(
        tiny_data,
        _one_trial_space(tmp_path, base, 50.0),
        tmp_path / "out",
        config=base,
        progress=False,
    )
    (record,) = result.records
    assert record.state == "failed"
    assert "training diverged at step" in record.note
    assert result.best is None
    assert result.best_toml is None
    assert not (tmp_path / "out" / "best.toml").exists()
    assert "| 0 | failed | 50 |" in result.table


def _short(base: Config) -> Config:
    """Trials of 10 steps with two validations: for the tests that need one to complete."""
    return configured(base, {"train.max_steps": 10, "train.validate_every": 5})


def _ctrl_c(tiny_data: Path, space: Any, out: Path, base: Config, monkeypatch: Any) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(_study, "train", interrupted)
        with pytest.raises(KeyboardInterrupt):
            tune(tiny_data, space, out, config=base, progress=False)


def _killed(tiny_data: Path, space: Any, out: Path, base: Config, monkeypatch: Any) -> None:
    """A trial left running in the study, as when its process is killed."""
    import optuna

    tune(tiny_data, space, out, config=base, trials=0, progress=False)  # the study, no trial
    study = optuna.load_study(study_name=_study.STUDY_NAME, storage=f"sqlite:///{out}/study.db")
    study.ask().suggest_categorical("train.lr", [GOOD_LR])


@pytest.mark.parametrize("stop", [_ctrl_c, _killed], ids=["ctrl-c", "killed"])
def test_an_interrupted_trial_runs_again_on_resume(
    stop: Any, tiny_data: Path, base: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = _short(base)
    space = _one_trial_space(tmp_path, short, GOOD_LR)
    out = tmp_path / "out"
    stop(tiny_data, space, out, short, monkeypatch)
    result = tune(tiny_data, space, out, config=short, progress=False)
    first, second = result.records
    assert first.state == "interrupted"
    assert first.note.startswith("interrupted (")
    assert first.note.endswith("; its values ran again as a later trial")
    assert second.state == "complete"
    assert second.values == first.values == {"train.lr": GOOD_LR}
    assert result.ran == 1
    assert result.best == second
    again = tune(tiny_data, space, out, config=short, progress=False)  # nothing left to run
    assert again.ran == 0
    assert again.records == result.records


def test_a_combination_the_config_refuses_fails_that_trial_only(
    tiny_data: Path, base: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(base: Config, values: dict[str, Any]) -> Config:
        raise ConfigError(["model.k = 9: must be <= model.dim"])

    monkeypatch.setattr(_study, "configured", refused)
    result = tune(
        tiny_data,
        _one_trial_space(tmp_path, base, GOOD_LR),
        tmp_path / "out",
        config=base,
        progress=False,
    )
    (record,) = result.records
    assert record.state == "failed"
    assert "model.k = 9: must be <= model.dim" in record.note
