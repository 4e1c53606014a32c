"""One training step on one global batch: steps 2-6 of `multiembed.train._loop`.

A non-finite loss or gradient norm raises `TrainingDivergedError` before the
update, so the last checkpoint stays the last good state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import torch

from multiembed.data.examples import Example
from multiembed.train._checkpoint import Position
from multiembed.train._objective import StepLoss
from multiembed.train._setup import Training
from multiembed.train.errors import TrainingDivergedError


class Update(NamedTuple):
    """What one step did.

    Attributes:
        position: the `Position` after the step.
        out: the objective's `StepLoss` (its ``fields`` go into a metrics line).
        loss: the global batch's mean loss; None when the batch kept no example and
            the step made no update.
        grad_norm: the gradient norm before clipping (NaN without an update).
        examples: the global batch's examples.
    """

    position: Position
    out: StepLoss
    loss: float | None
    grad_norm: float
    examples: int


def train_step(
    run: Training, at: Position, batch: Example, start: int, stop: int, sizes: list[int]
) -> Update:
    """One step from ``at`` on the global ``batch`` (CPU), this rank's rows ``start:stop``.

    Raises:
        TrainingDivergedError: a non-finite loss, or gradient norm (naming the first
            parameter whose gradient is not finite).
    """
    tc, model, optimiser = run.config.train, run.model, run.optimiser
    step = at.step + 1
    # 1-2: the global batch's ids -> frequency estimate -> log q; the estimate
    # counts the rows whose items the loss takes as negatives (CR: those with
    # a condition)
    ids = batch.target.to(run.ctx.device)  # [B] global
    run.estimator.update(ids[run.objective.counted(batch, ids)], step)
    log_q = run.estimator.log_q(ids)  # [B]
    # 3: the model's objective on this rank's rows
    optimiser.zero_grad(set_to_none=True)
    out = run.objective(batch, ids, log_q, start, stop, sizes)
    position = Position(
        epoch=at.epoch,
        batch=at.batch + 1,
        step=step,
        examples=at.examples + len(ids),
        without_condition=at.without_condition + out.without_condition,
        skipped_batches=at.skipped_batches + (out.loss is None),
    )
    if out.loss is None:  # no example of the batch has a condition
        return Update(position, out, None, math.nan, len(ids))

    # 4: non-finite loss
    if not math.isfinite(out.value):
        raise _diverged(step, "loss", run.checkpoint, f"value {out.value}")
    # 5: gradients and their norm
    out.loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    grad_norm = float(norm)
    if not math.isfinite(grad_norm):
        # every gradient can be finite while the sum of their squares overflows:
        # then no one tensor is to blame
        culprit = next(
            (
                name
                for name, p in model.named_parameters()
                if p.requires_grad and p.grad is not None and not torch.isfinite(p.grad).all()
            ),
            "gradient norm (every gradient finite; their total overflows)",
        )
        raise _diverged(step, culprit, run.checkpoint, f"gradient norm {grad_norm}")
    # 6: clip and update
    torch.nn.utils.clip_grads_with_norm_(params, tc.grad_clip, norm)
    optimiser.step()
    return Update(position, out, out.value, grad_norm, len(ids))


def _diverged(step: int, tensor: str, checkpoint: Path, detail: str) -> TrainingDivergedError:
    kept: Any = checkpoint if checkpoint.is_file() else None
    return TrainingDivergedError(step, tensor, kept, detail)
