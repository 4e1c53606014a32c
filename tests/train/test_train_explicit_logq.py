"""A Conditional Retrieval run estimates logQ over the rows its loss uses.

The CR loss (Eq. 9) takes its in-batch negatives from the examples that have a
condition only, so the frequency estimator must count those rows' items, not the
whole batch's: an item engaged only without a logged topic is never a negative.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from multiembed.data.frequency import FrequencyEstimator
from multiembed.nn.conditional import ItemInterest, SourceInterest
from multiembed.train import _loop, load_item_features, train
from tests.train.train_helpers import tiny_config

STEPS = 4


class Recording:
    """An objective that records ids, logged topics and log q of every call, then delegates."""

    def __init__(self, inner: Any, seen: list[tuple[Tensor, Tensor, Tensor]]) -> None:
        self.inner, self.seen = inner, seen

    def __call__(self, batch: Any, ids: Tensor, log_q: Tensor, *rest: Any) -> Any:
        self.seen.append((ids.clone(), batch.source_topic.clone(), log_q.clone()))
        return self.inner(batch, ids, log_q, *rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _estimator(config: Any, data: Path) -> FrequencyEstimator:
    return FrequencyEstimator(
        config.train.freq_buckets,
        num_items=load_item_features(data).n_items,
        alpha=config.train.freq_alpha,
    )


def test_cr_log_q_counts_only_the_rows_with_a_logged_topic(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Tensor, Tensor, Tensor]] = []
    build = _loop.build_objective
    monkeypatch.setattr(_loop, "build_objective", lambda *a, **kw: Recording(build(*a, **kw), seen))
    config = tiny_config({"kind": "explicit", "condition": "source"}, max_steps=STEPS)
    train(config, tiny_data, tmp_path / "run", progress=False)
    assert len(seen) == STEPS

    kept_rows, every_row = _estimator(config, tiny_data), _estimator(config, tiny_data)
    differs = 0
    for step, (ids, source_topic, log_q) in enumerate(seen, start=1):
        kept = source_topic >= 0
        assert 0 < int(kept.sum()) < ids.numel()  # both kinds of rows in every batch
        kept_rows.update(ids[kept], step)
        every_row.update(ids, step)
        assert torch.equal(log_q, kept_rows.log_q(ids)), step
        differs += not torch.equal(log_q, every_row.log_q(ids))
        if step == 1:
            # by hand: before step 1 every gap is 1; an item counted c times at step 1
            # gets the spread update B = (1 - a)^c + (1 - (1 - a)^c) / c, log q = -log B;
            # an item of the rows without a topic only is never counted: log q = 0
            a = config.train.freq_alpha
            counts = torch.bincount(ids[kept], minlength=int(ids.max()) + 1).double()
            c = counts[ids]
            gap = torch.where(c > 0, (1 - a) ** c + (1 - (1 - a) ** c) / c.clamp(min=1), 1.0)
            torch.testing.assert_close(log_q, -torch.log(gap).to(log_q.dtype))
            assert bool((c == 0).any())
            assert (log_q[c == 0] == 0).all()
    assert differs == STEPS  # counting every row would have given other values at each step


def test_trained_rows_are_the_loss_keep_mask_without_drawing() -> None:
    topics = torch.tensor([[2, 6], [-1, -1], [5, -1], [1, -1]])
    source = torch.tensor([1, 3, -1, -1])
    assert SourceInterest().keeps(source_topic=source, target_topics=topics).tolist() == [
        True,
        True,
        False,
        False,
    ]
    g = torch.Generator().manual_seed(0)
    for logged_only, want in (
        (False, [True, False, True, True]),
        (True, [True, False, False, False]),
    ):
        item = ItemInterest(generator=g, logged_only=logged_only)
        state = g.get_state()
        got = item.keeps(source_topic=source, target_topics=topics)
        assert torch.equal(g.get_state(), state)  # no draw: the loss's conditions stay put
        assert got.tolist() == want
        assert got.tolist() == item(source_topic=source, target_topics=topics).keep.tolist()
