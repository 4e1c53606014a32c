"""Offline evaluation end to end on a tiny synthetic world with untrained tiny models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import Tensor, nn

from multiembed.config import (
    Config,
    EvalConfig,
    ExamplesConfig,
    SplitConfig,
    SyntheticConfig,
    parse,
    to_dict,
)
from multiembed.data import prepare_dataset
from multiembed.eval._records import corpus_position, item_topic_matrix, load_eval_data
from multiembed.eval.evaluate import EVAL_FILE, evaluate, evaluate_model, summarize_seeds
from multiembed.eval.metrics import (
    SEGMENTS,
    MetricInputError,
    filtered_positive_ranks,
    hit_rate_at_k,
    positive_ranks,
)
from multiembed.nn.retrieval import RetrievalModel
from multiembed.runs._toml import dumps
from multiembed.train import load_item_features, train
from tests.model_helpers import implicit_model

WORLD = SyntheticConfig(n_users=200, n_items=1500, n_topics=6, subtopics_per_topic=2)
EXAMPLES = ExamplesConfig(seq_len=12)
EVAL = EvalConfig(ks=(10, 50, 100), corpus_size=800, budget=50, k_ex=3)
SIZES: dict[str, Any] = {"dim": 8, "id_dim": 8, "hidden_dim": 16, "seed": 0}
COMIREC = ("recall@20", "hit_rate@20", "ndcg@20", "recall@50", "hit_rate@50", "ndcg@50")
SERVED = tuple(
    f"{m}_{s}"
    for m in ("served_hr", "candidates", "coverage", "diversity")
    for s in ("round_robin", "global_topk")
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "data"
    prepare_dataset("synthetic", None, out, config=Config(synthetic=WORLD))
    return out


@pytest.fixture(scope="module")
def model(data: Path) -> RetrievalModel:
    return implicit_model("dcm", features=load_item_features(data), k=3, **SIZES)


class TopicConditioned(nn.Module):
    """A stand-in Conditional Retrieval model: the single-embedding tower fed one topic."""

    def __init__(self, inner: RetrievalModel) -> None:
        super().__init__()
        self.inner = inner

    def embed_conditioned(self, history: Tensor, history_valid: Tensor, topics: Tensor) -> Tensor:
        user = self.inner.embed_users(history, history_valid, followed=topics[:, None])
        return user.embeddings[:, 0]

    def embed_items(self, item_ids: Tensor) -> Tensor:
        return self.inner.embed_items(item_ids)


def run_eval(model, data, **kwargs):
    kwargs.setdefault("split", SplitConfig())
    kwargs.setdefault("config", EVAL)
    return evaluate_model(model, data, examples=EXAMPLES, progress=False, **kwargs)


def check_values(report: dict[str, Any], budget: int) -> None:
    for seg in report["segments"].values():
        for name, value in seg["metrics"].items():
            if value is None:
                continue
            if name.startswith("diversity"):
                assert value >= 0, name
            elif name.startswith("candidates"):
                assert 0 <= value <= budget, name
            else:
                assert 0.0 <= value <= 1.0, name


def test_report_keys_ranges_and_determinism(model, data):
    first = run_eval(model, data)
    assert model.training  # the caller's mode is restored
    second = run_eval(model, data)
    first.pop("seconds"), second.pop("seconds")
    assert first == second
    assert first["protocol"] == "users"
    assert first["models"] == {"implicit": True, "explicit": False}
    assert 0 < first["corpus"]["size"] <= 800
    assert set(first["segments"]) == {"all", *SEGMENTS}
    every = first["segments"]["all"]
    assert set(every["metrics"]) == {"hr@10", "hr@50", "hr@100", *COMIREC, *SERVED}
    assert every["n_records"] == first["records"]["evaluated"] > 0
    assert sum(first["segments"][s]["n_records"] for s in SEGMENTS) == every["n_records"]
    assert sum(first["segments"][s]["n_users"] for s in SEGMENTS) == every["n_users"]
    hr = [every["metrics"][f"hr@{k}"] for k in (10, 50, 100)]
    assert hr == sorted(hr)
    check_values(first, EVAL.budget)
    json.dumps(first, allow_nan=False)


def test_single_embedding_served_list_is_its_top_budget(data):
    # One embedding: both merges serve exactly its top-`budget` corpus items. The served
    # list holds corpus items only, so it can only miss positives that HR@budget counts
    # (those outside the corpus that outrank enough corpus items).
    single = implicit_model("single", features=load_item_features(data), **SIZES)
    report = run_eval(single, data)
    for name, seg in report["segments"].items():
        m = seg["metrics"]
        assert m["served_hr_round_robin"] == m["served_hr_global_topk"], name
        if name in ("core", "non_core"):  # not sent to the popularity list
            assert m["served_hr_round_robin"] <= m["hr@50"], name


# HR at every cut-off up to the corpus size: a rank off by one changes some HR@K
EVERY_K = EvalConfig(ks=tuple(range(1, 801)), corpus_size=800, budget=50, k_ex=3)


def explicit_reference(explicit: TopicConditioned, data: Path) -> dict[str, Any]:
    """Explicit and filtered HR recomputed from the model with the public metrics."""
    ev = load_eval_data(data, split=SplitConfig(), examples=EXAMPLES, config=EVERY_K)
    rec = ev.records
    rows = np.flatnonzero(rec.source_topic >= 0)  # records with a logged topic
    explicit.train(False)
    with torch.no_grad():
        cond = explicit.embed_conditioned(
            torch.as_tensor(rec.history[rows]),
            torch.as_tensor(rec.history_valid[rows]),
            torch.as_tensor(rec.source_topic[rows]),
        ).numpy()
        items = explicit.embed_items(torch.arange(ev.n_items)).numpy()
    explicit.train(True)
    corpus, positives = items[ev.corpus], items[rec.target[rows]]
    where = corpus_position(ev.corpus, rec.target[rows])
    ranks = positive_ranks(cond, corpus, positives, positive_index=where)
    filtered = filtered_positive_ranks(
        cond,
        corpus,
        positives,
        corpus_topics=ev.item_topics[ev.corpus],
        condition=rec.source_topic[rows],
        positive_topics=ev.item_topics[rec.target[rows]],
        positive_index=where,
    )
    first_follows = (rec.followed[rec.first] >= 0).any(axis=1)
    return {
        "records": rows.size,
        "explicit_hr": hit_rate_at_k(ranks, EVERY_K.ks),
        "filtered_hr": hit_rate_at_k(filtered, EVERY_K.ks),
        "users_following": int(first_follows.sum()),
    }


def test_explicit_model_filtered_hr_and_overlap(model, data):
    n_topics = int(load_item_features(data).topics.max()) + 1
    inner = implicit_model(
        "single", features=load_item_features(data), n_followed_topics=n_topics, **SIZES
    )
    explicit = TopicConditioned(inner)
    report = run_eval(model, data, explicit=explicit, config=EVERY_K)
    assert report["models"] == {"implicit": True, "explicit": True}
    every = report["segments"]["all"]
    want = explicit_reference(explicit, data)
    assert 0 < every["n_filtered_hr_records"] == want["records"] < every["n_records"]
    assert every["n_explicit_hr_records"] == want["records"]
    for k in EVERY_K.ks:
        assert every["metrics"][f"explicit_hr@{k}"] == pytest.approx(want["explicit_hr"][k]), k
        assert every["metrics"][f"filtered_hr@{k}"] == pytest.approx(want["filtered_hr"][k]), k
    # every user whose request follows a topic gets implicit and explicit lists; two
    # untrained towers retrieve partly different items (exact values: test_evaluate_reference)
    assert every["n_overlap_users"] == want["users_following"] > 0
    assert 0 < every["metrics"]["overlap"] < 1
    check_values(report, EVAL.budget)
    alone = run_eval(None, data, explicit=TopicConditioned(inner))
    assert "hr@10" not in alone["segments"]["all"]["metrics"]
    assert (
        alone["segments"]["all"]["metrics"]["filtered_hr@10"] == every["metrics"]["filtered_hr@10"]
    )


def test_comirec_protocol(model, data):
    report = run_eval(model, data, split=SplitConfig(protocol="comirec"))
    assert report["protocol"] == "comirec"
    assert set(COMIREC) <= set(report["segments"]["all"]["metrics"])
    check_values(report, EVAL.budget)


def test_max_users_bounds_the_records(model, data):
    report = run_eval(model, data, config=EvalConfig(ks=(10,), budget=20, max_users=100))
    assert 0 < report["records"]["evaluated"] <= 100 < report["records"]["available"]


def test_no_model_is_an_error(data):
    with pytest.raises(MetricInputError, match="at least one model, got None"):
        run_eval(None, data)


def test_summarize_seeds(model, data):
    a = run_eval(model, data, config=EvalConfig(ks=(10,), budget=20))
    table = summarize_seeds([a, a])
    assert table["all"]["hr@10"] == {
        "mean": a["segments"]["all"]["metrics"]["hr@10"],
        "std": 0.0,
        "n": 2,
    }


@pytest.fixture(scope="module")
def run_dir(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = parse(
        Config,
        {
            "synthetic": to_dict(WORLD),
            "examples": {"seq_len": 12},
            "model": {"k": 2, "dim": 8, "id_dim": 8, "hidden_dim": 16},
            "train": {"batch_size": 64, "max_steps": 3, "threads": 1},
            "eval": {"ks": [10, 50], "budget": 20, "corpus_size": 500},
        },
    )
    run = tmp_path_factory.mktemp("run") / "run"
    threads = torch.get_num_threads()
    train(config, data, run, progress=False)
    torch.set_num_threads(threads)  # train.threads = 1 sets it process-wide
    return run


def test_evaluate_writes_eval_json(run_dir, data):
    report = evaluate(run_dir, data, progress=False)
    written = json.loads((run_dir / EVAL_FILE).read_text())
    assert written == report
    assert report["model_version"].startswith("dcm-")
    assert report["eval_config"]["ks"] == [10, 50]  # the run's own eval settings
    assert set(report["segments"]["all"]["metrics"]) >= {"hr@10", "hr@50", *COMIREC}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multiembed", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_cli_evaluate(run_dir, data, tmp_path):
    cfg = tmp_path / "eval.toml"
    cfg.write_text(dumps({"eval": {"ks": [5], "budget": 10}}))
    result = run_cli(
        "evaluate",
        str(run_dir),
        "--data",
        str(data),
        "--config",
        str(cfg),
        "--no-progress",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "hr@5" in result.stdout
    assert "served_hr_round_robin" in result.stdout
    assert json.loads((run_dir / EVAL_FILE).read_text())["eval_config"]["ks"] == [5]
    missing = run_cli("evaluate", str(tmp_path / "nope"), "--data", str(data), cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr + missing.stdout


def test_item_topics_padding_matches_features(data):
    n, topics = item_topic_matrix(pq.read_table(data / "items.parquet"))
    features = load_item_features(data)
    assert n == features.n_items
    width = features.topics.shape[1]
    assert np.array_equal(topics[:, :width], features.topics.numpy())
