"""Typed errors of training.

`RunIntegrityError` (a damaged run directory or checkpoint) is `multiembed.runs`'s,
named here too because training raises it.
"""

from __future__ import annotations

from multiembed.errors import MultiembedError
from multiembed.runs.errors import RunIntegrityError

__all__ = ["RunIntegrityError", "TrainingDivergedError"]


class TrainingDivergedError(MultiembedError):
    """A non-finite loss or gradient stopped training.

    Attributes:
        step: the global step (1-based) whose loss or gradient was non-finite.
        tensor: ``"loss"`` or the name of the first parameter with a non-finite gradient.
        checkpoint: the last good checkpoint kept on disk, or None when none was written.

    Example:
        >>> err = TrainingDivergedError(7, "loss", None)
        >>> err.exit_code, str(err).splitlines()[0]
        (3, 'training diverged at step 7: non-finite loss')
    """

    exit_code = 3

    def __init__(self, step: int, tensor: str, checkpoint: object | None, detail: str = "") -> None:
        self.step = step
        self.tensor = tensor
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        what = "non-finite loss" if tensor == "loss" else f"non-finite gradient of {tensor}"
        kept = (
            f"the last good checkpoint is kept at {self.checkpoint}"
            if self.checkpoint
            else "no checkpoint had been written yet"
        )
        tail = f" ({detail})" if detail else ""
        super().__init__(
            f"training diverged at step {step}: {what}{tail}\n"
            f"{kept}; lower train.lr or train.grad_clip and start again"
        )
