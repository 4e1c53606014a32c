"""`evaluate_model` end to end against hand-computed values and naive loops.

A hand-built data directory (time protocol: the last day of the log evaluates,
the 14 days before train) and hand-built models with D = 2, chosen so that every rank is
known in advance:

- items 0..7 are the corpus (most engaged in training); item 8 is engaged too but
  cut by ``corpus_size = 8``; items 9..29 are never engaged (outside);
- item ``i`` is embedded as ``[x_i, y_i]``, with ``y = 0`` except for item 7, and
  ``x < 0`` for items 7, 10 and the fillers 12..29 (an unused slot, embedded as
  zero, would outscore them if it were not masked);
- the implicit model gives slot 0 the query of the last history item and slot 1
  that of the one before (unused when there is none): ``[1, 0]`` for an even
  item, ``[0, 1]`` for an odd one;
- the conditional model embeds topic 0 as ``[1, 0]`` and topic 1 as ``[-1, 0]``.

Ranks are 0-based, so a positive at rank ``K - 1`` is a hit at K and one at rank
K a miss.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch import Tensor, nn

from multiembed.config import EvalConfig, ExamplesConfig, SplitConfig
from multiembed.data.schema import (
    ENGAGEMENTS_FILE,
    ENGAGEMENTS_SCHEMA,
    ITEMS_FILE,
    USER_TOPICS_FILE,
    USER_TOPICS_SCHEMA,
    items_schema,
)
from multiembed.eval.evaluate import evaluate_model
from multiembed.nn.user_tower import UserEmbeddings

DAY = 86_400
KS = (1, 3, 5, 8)
CORPUS = list(range(8))
N_ITEMS = 30
X = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, -0.2, 0.99, 0.65, -0.15, 0.7]  # items 0..11
X += [-0.015 - 0.01 * i for i in range(N_ITEMS - len(X))]  # fillers, 14 of them above item 10
ITEMS = np.zeros((N_ITEMS, 2), dtype=np.float32)
ITEMS[:, 0] = X
ITEMS[7, 1] = 0.95
TOPICS = [i % 2 for i in range(12)] + [2] * (N_ITEMS - 12)

# (user, history before the evaluation day, [(positive, logged topic or None)], followed)
USERS: list[tuple[int, list[int], list[tuple[int, int | None]], list[int]]] = [
    (500, [0], [(2, 0)], [0]),  # rank 2 = K - 1 for K = 3: a hit
    (501, [0], [(3, 1)], [1]),  # rank 3 = K for K = 3: a miss
    (502, [1, 0], [(7, None)], []),  # two slots: 0.95 on y tops every x: rank 0
    (503, [0], [(7, None)], []),  # one slot: only x counts, last of the corpus: rank 7
    (504, [0], [(9, 0)], []),  # outside the corpus: items 0, 1, 2 above, rank 3
    (505, [0], [(11, None)], []),  # outside, x tied with item 2: pessimistic rank 3
    (506, [0], [(8, None)], []),  # outside (cut from the corpus), above all: rank 0
    (507, [0], [(4, None), (0, None), (10, None)], []),  # ranks 4, 0 (history [0, 4]), 7
    (508, [0], [(10, None)], []),  # outside, above item 7 only: rank 7 = K - 1 for K = 8
]
HR = {1: 3 / 11, 3: 4 / 11, 5: 8 / 11, 8: 11 / 11}  # ranks 2 3 0 7 3 3 0 4 0 7 7
# records with a logged topic (500, 501, 504): conditioned on it, unfiltered ranks
# 2 (0, 1 above), 4 (topic 1 is -x: 4, 5, 6, 7 above), 3; after the topic filter
# 1 (0 above), 2 (5, 7 above), inf (item 9 lacks topic 0: never served)
EXPLICIT_HR = {1: 0.0, 3: 1 / 3, 5: 1.0, 8: 1.0}
FILTERED_HR = {1: 0.0, 3: 2 / 3, 5: 2 / 3, 8: 2 / 3}
# budget 4 split 2 + 2; implicit [0, 1] both times; explicit topic 0 [0, 2] (overlap
# 1/2) for user 500 and topic 1 [7, 5] (overlap 0) for user 501
OVERLAP = 0.25


def query(item: int) -> list[float]:
    return [1.0, 0.0] if item % 2 == 0 else [0.0, 1.0]


class HandModel(nn.Module):
    """Slot k is the query of the (k+1)-th last history item; items are `ITEMS`."""

    def embed_items(self, item_ids: Tensor) -> Tensor:
        return torch.from_numpy(ITEMS)[item_ids]

    def embed_users(
        self, history: Tensor, history_valid: Tensor, *, followed: Tensor | None = None
    ) -> UserEmbeddings:
        last = history[:, [-1, -2]]  # [B, 2] right-aligned histories
        used = history_valid[:, [-1, -2]]  # [B, 2]
        odd = (last % 2 == 1).float()
        embeddings = torch.stack([1.0 - odd, odd], dim=-1) * used[..., None]  # [B, 2, 2]
        return UserEmbeddings(embeddings, used, used.float())


class HandConditional(nn.Module):
    """Topic 0 is ``[1, 0]``, topic 1 ``[-1, 0]``, whatever the history."""

    def embed_items(self, item_ids: Tensor) -> Tensor:
        return torch.from_numpy(ITEMS)[item_ids]

    def embed_conditioned(self, history: Tensor, history_valid: Tensor, topics: Tensor) -> Tensor:
        sign = 1.0 - 2.0 * (topics == 1).float()
        return torch.stack([sign, torch.zeros_like(sign)], dim=-1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hand")
    rows: list[tuple[int, int, int, int | None]] = []  # user, item, ts, source topic
    # training: item i of the corpus engaged 9 - i times, item 8 once (cut by corpus_size)
    for item, times in [*((i, 9 - i) for i in CORPUS), (8, 1)]:
        rows += [(1000 + item, item, DAY + n, None) for n in range(times)]
    for user, history, targets, _ in USERS:
        rows += [(user, item, 2 * DAY + n, None) for n, item in enumerate(history)]
        rows += [(user, item, 14 * DAY + 100 + n, t) for n, (item, t) in enumerate(targets)]
    columns = ("user_id", "item_id", "ts", "source_topic")
    engagements: dict[str, object] = dict(zip(columns, zip(*rows, strict=True), strict=True))
    engagements["action"] = ["click"] * len(rows)
    pq.write_table(pa.table(engagements, schema=ENGAGEMENTS_SCHEMA), out / ENGAGEMENTS_FILE)
    items = {"item_id": range(N_ITEMS), "topics": [[t] for t in TOPICS], "valid": [True] * N_ITEMS}
    pq.write_table(pa.table(items, schema=items_schema(None, 0)), out / ITEMS_FILE)
    follows = [(u, t) for u, _, _, topics in USERS for t in topics]
    table = {
        "user_id": [u for u, _ in follows],
        "topic": [t for _, t in follows],
        "followed_at": [1] * len(follows),
        "unfollowed_at": [None] * len(follows),
    }
    pq.write_table(pa.table(table, schema=USER_TOPICS_SCHEMA), out / USER_TOPICS_FILE)
    return out


def run(data: Path, explicit: HandConditional | None = None) -> dict[str, float | None]:
    report = evaluate_model(
        HandModel(),
        data,
        split=SplitConfig(protocol="time", valid_share=0.0, allow_small_train=True),
        examples=ExamplesConfig(seq_len=4),
        config=EvalConfig(ks=KS, corpus_size=len(CORPUS), budget=4),
        explicit=explicit,
        progress=False,
    )
    every = report["segments"]["all"]
    assert (every["n_records"], every["n_users"]) == (11, 9)
    assert report["corpus"]["size"] == len(CORPUS)
    assert report["corpus"]["positives_in_corpus"] == pytest.approx(6 / 11)
    metrics: dict[str, float | None] = every["metrics"]
    return metrics


def naive_scores(history: list[int]) -> list[float]:
    """Max over the used slots (the last two history items) of every item's score."""
    slots = [query(h) for h in history[-2:]]
    return [max(q[0] * float(x) + q[1] * float(y) for q in slots) for x, y in ITEMS.tolist()]


def naive_records() -> list[tuple[list[int], int]]:
    """(history, positive) of every record, later records seeing the earlier targets."""
    out = []
    for _, history, targets, _ in USERS:
        seen = list(history)
        for item, _ in targets:
            out.append((list(seen), item))
            seen.append(item)
    return out


def naive_rank(history: list[int], positive: int) -> int:
    s = naive_scores(history)
    return sum(1 for c in CORPUS if c != positive and s[c] >= s[positive])


def test_hr_against_hand_values_and_a_naive_loop(data: Path) -> None:
    metrics = run(data)
    ranks = [naive_rank(h, p) for h, p in naive_records()]
    assert ranks == [2, 3, 0, 7, 3, 3, 0, 4, 0, 7, 7]
    for k in KS:
        assert metrics[f"hr@{k}"] == pytest.approx(HR[k]), k
        assert HR[k] == pytest.approx(np.mean([r < k for r in ranks]))


def test_comirec_metrics_against_a_naive_loop(data: Path) -> None:
    metrics = run(data)
    recall, hit, ndcg = {}, {}, {}
    for n in (20, 50):
        per_user = []
        for _, history, targets, _ in USERS:
            s = naive_scores(history)  # the first record's request: history before the day
            top = sorted(range(N_ITEMS), key=lambda i: (-s[i], i))[:n]
            wanted = {item for item, _ in targets}
            hits = [r for r, item in enumerate(top) if item in wanted]
            ideal = sum(1 / math.log2(r + 2) for r in range(min(len(wanted), n)))
            per_user.append(
                (
                    len(hits) / len(wanted),
                    float(bool(hits)),
                    sum(1 / math.log2(r + 2) for r in hits) / ideal,
                )
            )
        recall[n], hit[n], ndcg[n] = (float(np.mean(col)) for col in zip(*per_user, strict=True))
        assert metrics[f"recall@{n}"] == pytest.approx(recall[n]), n
        assert metrics[f"hit_rate@{n}"] == pytest.approx(hit[n]), n
        assert metrics[f"ndcg@{n}"] == pytest.approx(ndcg[n]), n
    # over all 30 items, item 10 is 25th (10 items and 14 fillers score higher) and
    # item 7 last for a one-slot user: misses at 20, hits at 50. So users 503 and 508
    # get recall 0 at 20, and user 507 (items 4, 0 and 10) 2 / 3 with a hit.
    assert recall[20] == pytest.approx((6 + 2 / 3) / 9)
    assert hit[20] == pytest.approx(7 / 9)
    assert recall[50] == hit[50] == 1.0


def test_explicit_and_filtered_hr_and_overlap_by_hand(data: Path) -> None:
    metrics = run(data, explicit=HandConditional())
    for k in KS:
        assert metrics[f"hr@{k}"] == pytest.approx(HR[k]), k
        assert metrics[f"explicit_hr@{k}"] == pytest.approx(EXPLICIT_HR[k]), k
        assert metrics[f"filtered_hr@{k}"] == pytest.approx(FILTERED_HR[k]), k
    assert metrics["overlap"] == pytest.approx(OVERLAP)
