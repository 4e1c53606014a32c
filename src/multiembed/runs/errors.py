"""Typed errors of reading and writing a run directory."""

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
