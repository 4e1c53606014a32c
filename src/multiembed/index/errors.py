"""Typed errors of the item index.

`IndexInputError` is a bad argument (a shape, a dtype, a duplicate id, an
unknown factory string); `IndexIntegrityError` is a saved index that cannot be
trusted (missing or damaged file, or built for another model version). Both
derive from `MultiembedError`, so the command line prints them without a
traceback, and both say what was expected and what was found.
"""

from __future__ import annotations

from multiembed.errors import ArgumentError, MultiembedError


class IndexInputError(ArgumentError):
    """An argument to an index call has the wrong shape, dtype or value.

    >>> str(IndexInputError("search", "queries", "[Q, 8] float", "[3, 4] float32"))
    'search: queries must be [Q, 8] float, got [3, 4] float32'
    """


class IndexIntegrityError(MultiembedError):
    """A saved index is refused: a file is missing, truncated or altered, or the
    manifest names another model version or backend.

    >>> str(IndexIntegrityError("/x/vectors.npy", "size differs", expected="64 bytes", got="60"))
    '/x/vectors.npy: size differs (expected 64 bytes, got 60)'
    """

    def __init__(
        self, path: object, problem: str, *, expected: str | None = None, got: str | None = None
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.expected = expected
        self.got = got
        detail = f" (expected {expected}, got {got})" if expected is not None else ""
        super().__init__(f"{self.path}: {problem}{detail}")
