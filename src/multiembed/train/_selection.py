"""Model selection: the best validation score so far, its weights, and when to stop.

The loop validates on held-out *validation* users (never the test users that
`evaluate` reports) at each epoch's end and every ``train.validate_every`` steps.
`Selection` keeps a copy of the weights of the best validation so far and counts
the validations since it; with ``train.patience`` > 0 the run stops once that
many validations in a row failed to beat the best. The run's weights are then the
best ones (``train.keep = "best"``) or the last (``"last"``).

Its state (scores, counts and the best weights) is part of the checkpoint, so a
resumed run selects exactly as an uninterrupted one.

Example:
    >>> from torch import nn
    >>> model = nn.Linear(2, 1)
    >>> s = Selection(patience=2)
    >>> s.observe(0.5, step=10, epoch=0, model=model), s.observe(0.4, step=20, epoch=1, model=model)
    (True, False)
    >>> s.stop, s.observe(0.45, step=30, epoch=2, model=model), s.stop
    (False, False, True)
    >>> s.best_step, s.best_score
    (10, 0.5)
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

PREFIX = "best."
"""Checkpoint tensor prefix of the best weights."""
_STATE = (
    "best_score",
    "best_step",
    "best_epoch",
    "since_best",
    "validations",
    "stopped_at",
    "interests",
)
"""The JSON-able state (`Selection.document`), in the order it is written."""


class Selection:
    """Best validation score, its step, epoch and weights; validations since.

    Args:
        patience: stop after this many validations in a row without improvement
            (0: never stop early).
    """

    def __init__(self, *, patience: int) -> None:
        self.patience = patience
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.best_epoch: int | None = None
        self.since_best = 0
        self.validations = 0
        self.stopped_at: int | None = None
        self.best_weights: dict[str, Tensor] | None = None
        self.interests: dict[str, Any] | None = None
        """The served number of interests once chosen during training
        (``train.select_during``: `InterestChoice.document` and its step), else None."""

    @property
    def stop(self) -> bool:
        """True once ``patience`` validations in a row did not improve (patience > 0)."""
        return self.patience > 0 and self.since_best >= self.patience

    def observe(self, score: float | None, *, step: int, epoch: int, model: nn.Module) -> bool:
        """Record one validation; returns True when it is the new best (weights copied).

        A score of None (nothing to validate on) counts as no improvement.
        """
        self.validations += 1
        better = False
        if score is not None and (self.best_score is None or score > self.best_score):
            better = True
            self.best_score, self.best_step, self.best_epoch = float(score), step, epoch
            self.since_best = 0
            self.best_weights = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        else:
            self.since_best += 1
        if self.stop and self.stopped_at is None:
            self.stopped_at = step
        return better

    def restore_best(self, model: nn.Module) -> bool:
        """Load the best weights into ``model``; False when there are none."""
        if self.best_weights is None:
            return False
        model.load_state_dict(self.best_weights)
        return True

    def tensors(self) -> dict[str, Tensor]:
        """The best weights under `PREFIX`, for the checkpoint."""
        return {f"{PREFIX}{k}": v for k, v in (self.best_weights or {}).items()}

    def document(self) -> dict[str, Any]:
        """The JSON-able part of the state, for the checkpoint and the manifest."""
        return {name: getattr(self, name) for name in _STATE}

    def load(self, document: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        """Restore what `document` and `tensors` saved (tensors may hold other prefixes)."""
        for name in _STATE:
            setattr(self, name, document.get(name))
        self.since_best = int(document.get("since_best", 0))
        self.validations = int(document.get("validations", 0))
        best = {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        self.best_weights = best or None

    def summary(self, keep: str) -> dict[str, Any]:
        """What the manifest records: the winning step, epoch and score, and why training ended."""
        used = "best" if keep == "best" and self.best_weights is not None else "last"
        document = {k: v for k, v in self.document().items() if k != "interests"}
        return {**document, "weights": used, "patience": self.patience}  # interests: their own
