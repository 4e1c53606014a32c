"""Typed errors of the retrieval plan."""

from __future__ import annotations

from multiembed.errors import MultiembedError


class RetrievalInputError(MultiembedError, ValueError):
    """An argument to a retrieval-plan function has the wrong shape, dtype or value.

    >>> str(RetrievalInputError("equal_budgets", "total", "a non-negative int", "-3"))
    'equal_budgets: total must be a non-negative int, got -3'
    """

    def __init__(self, where: str, argument: str, expected: str, got: str) -> None:
        self.where = where
        self.argument = argument
        self.expected = expected
        self.got = got
        super().__init__(f"{where}: {argument} must be {expected}, got {got}")
