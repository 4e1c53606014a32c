"""`multiembed train`: the default model, the summary, clean failures."""

from __future__ import annotations

import json
from pathlib import Path

from multiembed.config import Config
from multiembed.runs import load_item_features, model_from_config, n_topic_ids
from multiembed.train._validation import Validator
from tests.train.train_helpers import run_cli


def test_default_config_trains_a_dcm_model(tiny_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    result = run_cli(
        "train", "--data", str(tiny_data), "--out", str(run), "--max-steps", "2", "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert out.startswith("split 'users': engagements 8,563 · training targets 7,806 (95.8 % of")
    assert "trained dcm: stopped at train.max_steps steps 2 · epochs 0" in out
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"] == "dcm"
    assert "model version dcm-" in result.stdout
    assert '[model]\nname = "dcm"\nk = 4\n' in (run / "config.toml").read_text()


def test_missing_data_directory_is_a_clean_error(tmp_path: Path):
    result = run_cli(
        "train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), cwd=tmp_path
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: ")
    assert "nope/engagements.parquet: missing" in result.stderr


def test_bad_override_is_a_config_error(tiny_data: Path, tmp_path: Path):
    result = run_cli(
        "train", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--epochs", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "train.epochs = 0: must be > 0" in result.stderr


def test_a_tiny_one_day_log_trains_through_the_cli(tmp_path: Path):
    """12 users (one with a single event) on 20 items in one day: smaller than a batch, K
    above most histories. `prepare` and `train` with no config give a model, not an error."""
    source = tmp_path / "source"
    source.mkdir()
    rows = ["userId,movieId,rating,timestamp"]
    for user in range(1, 13):
        n = 1 if user == 1 else 2 + user % 7
        rows += [f"{user},{1 + (user * 7 + i) % 20},5.0,{1_600_000_000 + user * 60 + i}"
                 for i in range(n)]  # fmt: skip
    (source / "ratings.csv").write_text("\n".join(rows) + "\n")
    movies = [f"{i},m{i},t{i % 3}" for i in range(1, 21)]
    (source / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(movies) + "\n")
    (source / "tags.csv").write_text("userId,movieId,tag,timestamp\n")
    data, run = tmp_path / "data", tmp_path / "run"
    prepared = run_cli("prepare", "--dataset", "movielens", "--source", str(source),
                       "--out", str(data), cwd=tmp_path)  # fmt: skip
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    trained = run_cli("train", "--data", str(data), "--out", str(run), "--no-progress",
                      cwd=tmp_path)  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    training = json.loads((run / "manifest.json").read_text())["training"]
    split = training["split"]
    assert split["engagements"] == len(rows) - 1
    assert split["training_targets"] >= 0.8 * split["positive"]
    # 20 items: HR@100 is 1 for any model, so selection reads HR at a tenth of the corpus
    checks = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    checks = [r["validation"] for r in checks if "validation" in r]
    assert checks
    assert all("hr@2" in v for v in checks)
    assert training["selection"]["best_score"] == max(v["hr@2"] for v in checks)
    untrained = model_from_config(Config(), load_item_features(data), n_topics=n_topic_ids(data))
    checked = Validator(Config(), data)(untrained)
    assert checked.metrics["hr@100"] == 1.0
    assert checked.score == checked.metrics["hr@2"] < 1.0
