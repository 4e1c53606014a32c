"""What one training step optimises, per model kind: the loop calls an `Objective`.

- `ImplicitObjective`: the towers' forward on this rank's rows (wrapped for DDP) and
  Eq. 9 against every item of the global batch (`multiembed.train._step`);
- `ConditionalObjective`: `ConditionalRetrievalModel.loss`, i.e. the association's
  condition and keep-mask, the examples without a condition dropped (and counted),
  and Eq. 9 among the kept examples. One process only: its in-batch negatives are
  the kept rows, which would need a gather of variable-size shards under torchrun.

Both return a `StepLoss`; `build_objective` picks one by the model's type.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from multiembed.data.examples import Example
from multiembed.errors import ConfigError
from multiembed.nn.conditional import ConditionalBatch, ConditionalRetrievalModel
from multiembed.nn.retrieval import RetrievalModel
from multiembed.runs import TrainableModel
from multiembed.train import _distributed
from multiembed.train._checkpoint import Position
from multiembed.train._distributed import DistContext, RowStreams
from multiembed.train._step import TowerStep


class StepLoss(NamedTuple):
    """One step's loss.

    Attributes:
        loss: the scalar to backpropagate, or None when the batch has nothing to
            train on (the loop then makes no update and counts a skipped batch).
        value: the global batch's mean loss (NaN when ``loss`` is None).
        without_condition: examples of the global batch that got no condition.
        fields: extra ``metrics.jsonl`` fields of this step, given the position after
            it (called on logging steps only).
    """

    loss: Tensor | None
    value: float
    without_condition: int
    fields: Callable[[Position], dict[str, Any]]


class Objective(Protocol):
    """Call: ``(batch, ids [B], log_q [B], start, stop, sizes) -> StepLoss``.

    ``batch`` is the global batch on the CPU; ``ids`` and ``log_q`` its target ids and
    log q on the device; rows ``start:stop`` are this rank's (``sizes``: every rank's).
    ``summary(position)`` gives the objective's entries of the manifest's ``training``;
    ``counted(batch, ids)`` the rows whose items the loss uses as in-batch negatives,
    which the frequency estimator (logQ) counts.
    """

    def __call__(
        self, batch: Example, ids: Tensor, log_q: Tensor, start: int, stop: int, sizes: list[int]
    ) -> StepLoss: ...

    def counted(self, batch: Example, ids: Tensor) -> Tensor: ...

    def summary(self, position: Position) -> dict[str, Any]: ...


class ImplicitObjective:
    """Eq. 9 of a `RetrievalModel` over the global batch, data parallel under torchrun."""

    def __init__(self, model: RetrievalModel, ctx: DistContext, *, followed: bool) -> None:
        self.model = model
        self.ctx = ctx
        self.followed = followed
        self.towers = _distributed.wrap(TowerStep(model), ctx)
        self.streams = RowStreams(model)

    def counted(self, batch: Example, ids: Tensor) -> Tensor:
        """``[B]`` all True: every item of the global batch is a negative."""
        return torch.ones(ids.shape, dtype=torch.bool, device=ids.device)

    def __call__(
        self, batch: Example, ids: Tensor, log_q: Tensor, start: int, stop: int, sizes: list[int]
    ) -> StepLoss:
        ctx, dev = self.ctx, self.ctx.device
        local = (
            batch.history[start:stop].to(dev),
            batch.history_valid[start:stop].to(dev),
            batch.target[start:stop].to(dev),
            batch.followed[start:stop].to(dev) if self.followed else None,
        )
        with self.streams.aligned(ctx, sizes):
            out = self.towers(*local)
        items = _distributed.gather_rows(out.item, ctx, sizes)  # [B, D]
        rows = self.model.eq9(
            out.user, out.slot_mask, out.chosen, items, log_q, ids, start=start, history=local[0]
        )  # [b]
        loss = rows.sum() / len(ids) * ctx.world_size  # DDP's mean makes it global
        value = float(ctx.sum(rows.sum().detach())) / len(ids)

        def fields(position: Position) -> dict[str, Any]:
            d = self.model.diagnostics(out.user, out.slot_mask, out.slot)
            return {
                "mean_pairwise_cosine": float(d.mean_pairwise_cosine),
                "effective_interests": float(d.effective_interests),
                "slot_win_share": d.slot_win_share.tolist(),
            }

        return StepLoss(loss, value, 0, fields)

    def summary(self, position: Position) -> dict[str, Any]:
        return {}


class ConditionalObjective:
    """`ConditionalRetrievalModel.loss` over the batch (one process).

    Raises:
        ConfigError: under torchrun (``WORLD_SIZE`` > 1).
    """

    def __init__(self, model: ConditionalRetrievalModel, ctx: DistContext) -> None:
        if ctx.world_size > 1:
            raise ConfigError(
                [
                    f"model.kind = 'explicit': data parallel training is not supported "
                    f"(WORLD_SIZE = {ctx.world_size}); train it in one process"
                ]
            )
        self.model = model
        self.ctx = ctx

    def _batch(self, batch: Example, ids: Tensor) -> ConditionalBatch:
        dev = self.ctx.device
        return ConditionalBatch(
            history=batch.history.to(dev),
            history_valid=batch.history_valid.to(dev),
            target=ids,
            source_topic=batch.source_topic.to(dev),
            followed=batch.followed.to(dev),
        )

    def counted(self, batch: Example, ids: Tensor) -> Tensor:
        """``[B]``: the examples with a condition, the only ones among the negatives."""
        return self.model.trained_rows(self._batch(batch, ids))

    def __call__(
        self, batch: Example, ids: Tensor, log_q: Tensor, start: int, stop: int, sizes: list[int]
    ) -> StepLoss:
        loss, stats = self.model.loss(self._batch(batch, ids), log_q)
        kept = stats.n_kept
        followed_share = (
            None
            if stats.n_condition_followed is None or not kept
            else stats.n_condition_followed / kept
        )

        def fields(position: Position) -> dict[str, Any]:
            shares = {"kept": kept, "condition_followed_share": followed_share}
            return shares | self.summary(position)

        if kept == 0:
            return StepLoss(None, math.nan, stats.n_without_condition, fields)
        return StepLoss(loss, float(loss.detach()), stats.n_without_condition, fields)

    def summary(self, position: Position) -> dict[str, Any]:
        return {
            "examples_without_condition": position.without_condition,
            "skipped_batches": position.skipped_batches,
        }


def build_objective(model: TrainableModel, ctx: DistContext, *, followed: bool) -> Objective:
    """The `Objective` of ``model``: conditional for a `ConditionalRetrievalModel`."""
    if isinstance(model, ConditionalRetrievalModel):
        return ConditionalObjective(model, ctx)
    return ImplicitObjective(model, ctx, followed=followed)
