"""Typed errors of the retrieval plan."""

from __future__ import annotations

from multiembed.errors import ArgumentError


class RetrievalInputError(ArgumentError):
    """An argument to a retrieval-plan function has the wrong shape, dtype or value.

    >>> str(RetrievalInputError("equal_budgets", "total", "a non-negative int", "-3"))
    'equal_budgets: total must be a non-negative int, got -3'
    """
