"""Typed errors of training and of loading a run directory."""

from __future__ import annotations

from multiembed.errors import MultiembedError


class RunIntegrityError(MultiembedError):
    """A run directory or checkpoint cannot be trusted: a file is missing, corrupt,
    truncated, or does not match the configuration or the other files.

    Attributes:
        path: the offending file.
        problem: what is wrong with it.

    Example:
        >>> str(RunIntegrityError("run/weights.safetensors", "checksum mismatch"))
        'run/weights.safetensors: checksum mismatch'
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


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
