"""Served lists with the relevance filter switched off (Table 3's "CR w/o filter")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from multiembed.config import Config, EvalConfig, ExamplesConfig, SplitConfig, SyntheticConfig
from multiembed.data import prepare_dataset
from multiembed.eval._records import load_eval_data
from multiembed.eval.evaluate import evaluate_model
from multiembed.eval.metrics import top_n
from multiembed.nn.retrieval import RetrievalModel
from multiembed.train import load_item_features
from tests.model_helpers import implicit_model

WORLD = SyntheticConfig(n_users=200, n_items=1500, n_topics=6, subtopics_per_topic=2)
EXAMPLES = ExamplesConfig(seq_len=12)
SIZES = {"dim": 8, "id_dim": 8, "hidden_dim": 16, "seed": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("served_filter") / "data"
    prepare_dataset("synthetic", None, out, config=Config(synthetic=WORLD))
    return out


class Unconditioned(nn.Module):
    """A conditional model whose embedding ignores the topic: every explicit list of a
    request is then the same ranking."""

    def __init__(self, inner: RetrievalModel) -> None:
        super().__init__()
        self.inner = inner

    def embed_conditioned(self, history: Tensor, history_valid: Tensor, topics: Tensor) -> Tensor:
        return self.inner.embed_users(history, history_valid).embeddings[:, 0]

    def embed_items(self, item_ids: Tensor) -> Tensor:
        return self.inner.embed_items(item_ids)


def evaluate(explicit: Unconditioned, data: Path, config: EvalConfig) -> dict:  # type: ignore[type-arg]
    return evaluate_model(
        None,
        data,
        split=SplitConfig(),
        examples=EXAMPLES,
        config=config,
        explicit=explicit,
        progress=False,
    )


def reference_served_hr(explicit: Unconditioned, data: Path, config: EvalConfig) -> float:
    """Without the filter, identical lists merged round-robin with dedup serve the top
    `budget` corpus items of the one embedding; a user following no topic gets the most
    engaged corpus items."""
    ev = load_eval_data(data, split=SplitConfig(), examples=EXAMPLES, config=config)
    rec = ev.records
    explicit.train(False)
    with torch.no_grad():
        emb = explicit.embed_conditioned(
            torch.as_tensor(rec.history), torch.as_tensor(rec.history_valid), torch.zeros(1)
        ).numpy()
        items = explicit.embed_items(torch.arange(ev.n_items)).numpy()
    explicit.train(True)
    corpus = np.sort(ev.corpus)  # an exact index over the corpus breaks ties by smaller id
    top = corpus[top_n(emb, items[corpus], config.budget).positions]  # [R, budget]
    popular = ev.corpus[: config.budget]  # most engaged first
    follows = (rec.followed >= 0).any(axis=1)
    hits = [t in (top[r] if follows[r] else popular) for r, t in enumerate(rec.target.tolist())]
    return float(np.mean(hits))


def test_served_hr_without_the_filter_searches_the_whole_corpus(data: Path) -> None:
    inner = implicit_model("single", features=load_item_features(data), **SIZES)
    explicit = Unconditioned(inner)
    on = EvalConfig(ks=(10,), corpus_size=800, budget=50, k_ex=3)
    off = EvalConfig(ks=(10,), corpus_size=800, budget=50, k_ex=3, relevance_filter=False)
    filtered, unfiltered = evaluate(explicit, data, on), evaluate(explicit, data, off)
    assert filtered["plan"]["relevance_filter"] is True
    assert unfiltered["plan"]["relevance_filter"] is False
    got = unfiltered["segments"]["all"]["metrics"]
    assert got["served_hr_round_robin"] == pytest.approx(reference_served_hr(explicit, data, off))
    assert got["candidates_round_robin"] == 50  # every request gets its whole budget
    # the filter keeps each list inside its topic: other lists, another hit rate
    assert filtered["segments"]["all"]["metrics"]["served_hr_round_robin"] != pytest.approx(
        got["served_hr_round_robin"]
    )
