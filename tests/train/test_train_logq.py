"""The training loop's logQ correction: the estimator counts the batch, then gives its log q.

Yi et al. (RecSys'19) estimate the sampling probabilities of a batch with that
batch counted, so the objective of step ``t`` must receive ``log q`` read after
``update(ids, t)``, not the estimate left by step ``t - 1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from multiembed.data.frequency import FrequencyEstimator
from multiembed.train import _loop, load_item_features, train
from tests.train.train_helpers import tiny_config

STEPS = 4


class Recording:
    """An objective that records the ids and log q of every call, then delegates."""

    def __init__(self, inner: Any, seen: list[tuple[Tensor, Tensor]]) -> None:
        self.inner, self.seen = inner, seen

    def __call__(self, batch: Any, ids: Tensor, log_q: Tensor, *rest: Any) -> Any:
        self.seen.append((ids.clone(), log_q.clone()))
        return self.inner(batch, ids, log_q, *rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_objective_gets_log_q_after_the_batch_is_counted(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Tensor, Tensor]] = []
    build = _loop.build_objective
    monkeypatch.setattr(_loop, "build_objective", lambda *a, **kw: Recording(build(*a, **kw), seen))
    config = tiny_config(max_steps=STEPS)
    train(config, tiny_data, tmp_path / "run", progress=False)
    assert len(seen) == STEPS

    reference = FrequencyEstimator(
        config.train.freq_buckets,
        num_items=load_item_features(tiny_data).n_items,
        alpha=config.train.freq_alpha,
    )
    for step, (ids, log_q) in enumerate(seen, start=1):
        stale = reference.log_q(ids)  # what reading before the update would give
        reference.update(ids, step)
        assert torch.equal(log_q, reference.log_q(ids)), step
        # the two orders differ at every step: at step 1 an item repeated in the batch
        # already has p > 1 (stale: p = 1 for all); later every item's gap moves
        assert not torch.equal(log_q, stale), step


def test_the_objective_hands_each_rows_history_to_eq9(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training with ``history_negatives = "drop"`` gives Eq. 9 the batch's histories, so
    a user's own items leave its softmax (`RetrievalModel.eq9`)."""
    from multiembed.nn.retrieval import RetrievalModel

    seen: list[Tensor | None] = []
    eq9 = RetrievalModel.eq9

    def recording(self: RetrievalModel, *args: Any, **kwargs: Any) -> Tensor:
        seen.append(kwargs.get("history"))
        assert self.history_negatives == "drop"
        return eq9(self, *args, **kwargs)

    monkeypatch.setattr(RetrievalModel, "eq9", recording)
    config = tiny_config({"history_negatives": "drop"}, max_steps=2)
    train(config, tiny_data, tmp_path / "run", progress=False)
    assert len(seen) == 2
    for history in seen:
        assert history is not None
        assert history.shape == (64, 12)
        assert (history >= 0).any()
