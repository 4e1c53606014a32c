"""Typed errors raised at the library's public boundaries.

Every error a user can cause with their input derives from `MultiembedError`;
the command line prints its message and exits non-zero without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class MultiembedError(Exception):
    """Base class for errors caused by user input (files, config, arguments)."""

    exit_code = 2


class ConfigError(MultiembedError):
    """A configuration has one or more problems; the message lists all of them.

    Each problem reads `section.key = value: rule`.
    """

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(
            f"invalid configuration{where} ({len(self.problems)} problem(s)):\n{lines}"
        )


class InputFileError(MultiembedError):
    """A whole input file cannot be used: missing, empty, undecodable or missing a column."""

    def __init__(self, path: object, problem: str, expected: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.expected = expected
        tail = f"; expected {expected}" if expected else ""
        super().__init__(f"{self.path}: {problem}{tail}")


class DataError(MultiembedError):
    """Data passed file-level checks but cannot be used as asked (e.g. nothing to train on)."""
