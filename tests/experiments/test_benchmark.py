"""The benchmark: EASE and rankings against naive NumPy, metrics by hand, the command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from multiembed.config import Config, load_toml, parse
from multiembed.errors import ConfigError
from multiembed.eval.metrics import drop_seen, interest_cosine
from multiembed.experiments import _baselines
from multiembed.experiments.benchmark import (
    benchmark,
    list_metrics,
    parse_models,
    parse_seeds,
    summarize,
)

# 6 users x 5 items, binary; item 4 has no user (a zero column of X).
X = np.array(
    [
        [1, 1, 0, 0, 0],
        [1, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [1, 0, 0, 1, 0],
    ],
    dtype=np.float64,
)


def naive_ease(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck 2019 written out: G with loops, P = (G + lam I)^-1, B_ij = -P_ij / P_jj, B_jj = 0."""
    m = x.shape[1]
    g = np.zeros((m, m))
    for u in range(x.shape[0]):
        for i in range(m):
            for j in range(m):
                g[i, j] += x[u, i] * x[u, j]
    p = np.linalg.inv(g + lam * np.eye(m))
    b = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            b[i, j] = 0.0 if i == j else -p[i, j] / p[j, j]
    return b


def test_ease_weights_match_the_naive_reference():
    b = _baselines.ease_weights(X.T @ X, 2.0)
    np.testing.assert_allclose(b, naive_ease(X, 2.0), rtol=1e-12, atol=1e-15)
    assert b[0, 1] == pytest.approx(0.2463768116, abs=1e-9)  # pinned: -P_01 / P_11 = 17 / 69
    assert np.all(np.diag(b) == 0.0)


def test_fit_ease_from_events_dedups_and_keeps_the_most_popular(monkeypatch: pytest.MonkeyPatch):
    user, item = np.nonzero(X)
    user, item = np.append(user, [2, 2, 0]), np.append(item, [3, 3, 0])  # repeated events
    monkeypatch.setattr(_baselines, "_GRAM_USERS", 4)  # X^T X summed over two blocks of users
    full = _baselines.fit_ease(user, item, 5, lam=2.0)
    np.testing.assert_array_equal(full.item_ids, np.arange(5))
    np.testing.assert_allclose(full.weights, naive_ease(X, 2.0), rtol=1e-12, atol=1e-15)
    # Distinct users per item: 4, 3, 4, 3, 0 -> the 3 most popular are 0, 2 and 1 (ties:
    # smaller id); counting the repeated events would pick item 3 instead of item 1.
    top = _baselines.fit_ease(user, item, 5, lam=2.0, max_items=3)
    np.testing.assert_array_equal(top.item_ids, [0, 1, 2])
    np.testing.assert_allclose(top.weights, naive_ease(X[:, :3], 2.0), rtol=1e-12, atol=1e-15)
    queries, _ = _baselines.ease_scoring(top, [np.array([3, 1, 4])], 5).queries(np.arange(1))
    assert queries.tolist() == [[[0.0, 1.0, 0.0]]]  # liked items 3 and 4 are not modelled
    monkeypatch.setattr(_baselines, "FLOAT64_ITEMS", 2)
    small = _baselines.fit_ease(user, item, 5, lam=2.0)
    assert small.weights.dtype == np.float32
    np.testing.assert_allclose(small.weights, naive_ease(X, 2.0), rtol=1e-5, atol=1e-6)


def naive_rank(scores: np.ndarray, seen: list[np.ndarray], n: int) -> np.ndarray:
    """Sort every item by (-score, id) with a Python sort, skipping seen items."""
    out = np.full((scores.shape[0], n), -1, dtype=np.int64)
    for u, row in enumerate(scores):
        ranked = sorted(range(row.size), key=lambda i: (-row[i], i))
        kept = [i for i in ranked if i not in set(seen[u].tolist())][:n]
        out[u, : len(kept)] = kept
    return out


def test_ease_ranking_is_history_row_times_b_without_history():
    model = _baselines.fit_ease(*np.nonzero(X), 5, lam=2.0)
    liked = [np.array([0]), np.array([1, 3]), np.array([], dtype=np.int64)]
    seen = [np.array([0, 2]), np.array([1, 3]), np.array([4])]  # 2 was seen, not liked
    history = np.zeros((3, 5))
    for u, items in enumerate(liked):
        history[u, items] = 1.0
    scores = history @ naive_ease(X, 2.0)  # [3, 5]
    scoring = _baselines.ease_scoring(model, liked, 5)
    queries, mask = scoring.queries(np.arange(3))
    assert mask.all()
    np.testing.assert_allclose(queries[:, 0, :] @ scoring.items.T, scores, atol=1e-15)
    expected = naive_rank(scores, seen, 4)
    got = _baselines.rank_unseen(scoring, seen, 4, batch_size=2)
    np.testing.assert_array_equal(got, expected)
    assert got[2].tolist() == [0, 1, 2, 3]  # no history: all scores 0, ties by id


def test_embedding_ranking_is_max_over_used_slots_without_history():
    rng = np.random.default_rng(0)
    users = rng.normal(size=(5, 3, 4))
    mask = rng.random((5, 3)) < 0.7
    mask[:, 0] = True
    items = rng.normal(size=(30, 4))
    seen = [rng.choice(30, size=s, replace=False) for s in (0, 3, 7, 1, 12)]
    scores = np.full((5, 30), -np.inf)
    for u in range(5):
        for k in range(3):
            if mask[u, k]:
                scores[u] = np.maximum(scores[u], items @ users[u, k])
    scoring = _baselines.embedding_scoring(users, mask, items)
    got = _baselines.rank_unseen(scoring, seen, 10, batch_size=2)
    np.testing.assert_array_equal(got, naive_rank(scores, seen, 10))


def test_drop_seen_keeps_order_and_pads():
    ranked = np.array([[9, 8, 7, 6, -1], [1, 2, 3, 4, 5], [-1, 4, -1, 2, -1]])
    out = drop_seen(ranked, [np.array([8, 6, 6]), np.array([5, 1]), np.array([3])], 4)
    assert out.tolist() == [[9, 7, -1, -1], [2, 3, 4, -1], [4, 2, -1, -1]]


def test_interest_cosine_matches_pairwise_loops():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(4, 3, 5))
    emb[1, 2] = 0.0  # a zero embedding: cosine 0 with everything
    mask = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 0], [1, 0, 1]], dtype=bool)
    expected = []
    for u in range(4):
        used = [k for k in range(3) if mask[u, k]]
        cos = []
        for j in used:
            for m in used:
                if j != m:
                    a, b = emb[u, j], emb[u, m]
                    na, nb = np.linalg.norm(a), np.linalg.norm(b)
                    cos.append(0.0 if na == 0 or nb == 0 else a @ b / (na * nb))
        expected.append(np.mean(cos) if cos else math.nan)
    np.testing.assert_allclose(interest_cosine(emb, mask), expected, rtol=1e-12)


def test_list_metrics_by_hand():
    top = np.array([np.arange(50), np.arange(50, 100), np.arange(50)])  # ranked item ids
    targets = [np.array([3, 30, 99, 3]), np.array([100, 75]), np.array([101])]
    item_topics = np.zeros((102, 1), dtype=np.int64)  # items 0..99: topic 0
    item_topics[100], item_topics[101] = 1, -1  # item 101 has no topic
    m = list_metrics(top, targets, item_topics)
    # user 0: 3 distinct targets, hits at ranks 3 and 30; user 1: a hit at rank 25 (item 75);
    # user 2: no hit, and no target topic (left out of coverage).
    ndcg0 = (1 / math.log2(5) + 1 / math.log2(32)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    ndcg1 = (1 / math.log2(27)) / (1 + 1 / math.log2(3))
    assert m["recall@20"] == pytest.approx((1 / 3 + 0 + 0) / 3)
    assert m["recall@50"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert m["hit_rate@50"] == pytest.approx(2 / 3)
    assert m["ndcg@50"] == pytest.approx((ndcg0 + ndcg1 + 0) / 3)
    assert m["coverage@50"] == pytest.approx((1 + 1 / 2) / 2)  # user 1 misses topic 1


def test_summarize_over_seeds():
    s = summarize([{"r": 0.25, "c": None}, {"r": 0.75, "c": None}])
    assert s["c"] is None
    assert s["r"] == {"mean": 0.5, "std": pytest.approx(math.sqrt(0.125)), "n": 2}


def test_model_and_seed_lists_are_checked():
    assert parse_models("mostpop,ease,dcm") == ("mostpop", "ease", "dcm")
    assert parse_seeds("2, 0") == (2, 0)
    with pytest.raises(ConfigError, match="unknown model 'popular' \\(known: mostpop, ease"):
        parse_models("popular,dcm")
    with pytest.raises(ConfigError, match="a model is named twice"):
        parse_models("dcm,dcm")
    with pytest.raises(ConfigError, match="expected comma-separated integers"):
        parse_seeds("0,x")
    with pytest.raises(ConfigError, match="expected distinct integers >= 0"):
        parse_seeds("-1")


def test_benchmark_refuses_explicit_models_and_no_seed(tmp_path: Path):
    explicit = parse(Config, {"model": {"kind": "explicit"}})
    with pytest.raises(ConfigError, match=r'model\.kind = "explicit": the benchmark compares'):
        benchmark(tmp_path, tmp_path / "out", config=explicit, models=["single"])
    with pytest.raises(ConfigError, match="seeds: expected at least one seed"):
        benchmark(tmp_path, tmp_path / "out", models=["single"], seeds=())
    assert not (tmp_path / "out").exists()


TINY_RUN = """\
[examples]
seq_len = 12
[model]
k = 3
dim = 16
id_dim = 8
hidden_dim = 16
[train]
epochs = 1
batch_size = 64
max_steps = 20
threads = 1
"""


def test_benchmark_command_end_to_end(tiny_data: Path, tmp_path: Path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_RUN)
    out = tmp_path / "bench"
    args = ["benchmark", str(tiny_data), "--models", "mostpop,ease,single", "--seeds", "0"]
    args += ["--out", str(out), "--config", str(config), "--no-progress"]
    result = subprocess.run(
        [sys.executable, "-m", "multiembed", *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "benchmark.json").read_text())
    assert list(report["models"]) == ["mostpop", "ease", "single"]
    assert report["split"]["protocol"] == "comirec"
    for name, model in report["models"].items():
        summary = model["summary"]
        for metric in ("recall@20", "recall@50", "hit_rate@50", "ndcg@50", "train_seconds"):
            assert 0.0 <= summary[metric]["mean"] <= (math.inf if "seconds" in metric else 1.0)
        assert summary["interest_cosine"] is None  # one embedding per user in all three
        assert len(model["runs"]) == 1, name
    run = load_toml(Config, out / "runs" / "single-seed0" / "config.toml")
    assert run.split.protocol == "comirec"  # test users are never trained on
    assert (run.model.name, run.model.seed, run.train.seed, run.model.dim) == ("single", 0, 0, 16)
    markdown = (out / "benchmark.md").read_text()
    assert "| model | Recall@20 | Recall@50 | HR@50 | NDCG@50 |" in markdown
    for name in ("mostpop", "ease", "single"):
        assert f"| {name} | " in markdown
        assert f"| {name} | " in result.stdout  # the table printed on the terminal


def test_benchmark_command_rejects_an_unknown_model(tiny_data: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from multiembed.cli.main import app

    result = CliRunner().invoke(
        app, ["benchmark", str(tiny_data), "--models", "mostpop,bert4rec", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown model 'bert4rec'" in result.output
    assert not (tmp_path / "benchmark.json").exists()
