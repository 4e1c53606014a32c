"""Typed errors raised at the library's public boundaries.

Every error a user can cause with their input derives from `MultiembedError`;
the command line prints its message and exits non-zero without a traceback.
A bad argument to a library function is an `ArgumentError` (each package raises
its own subclass), whose message `describe` helps to write.
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


class ArgumentError(MultiembedError, ValueError):
    """An argument to a library function has the wrong shape, dtype or value.

    Packages raise their own subclasses (`multiembed.index.IndexInputError`,
    `multiembed.retrieve.RetrievalInputError`, `multiembed.eval.errors.MetricInputError`),
    all with this message: where, the argument, what was expected and what was got.

    >>> str(ArgumentError("search", "k", "a positive int", "0"))
    'search: k must be a positive int, got 0'
    """

    def __init__(self, where: str, argument: str, expected: str, got: str) -> None:
        self.where = where
        self.argument = argument
        self.expected = expected
        self.got = got
        super().__init__(f"{where}: {argument} must be {expected}, got {got}")

    @classmethod
    def check_int(
        cls, where: str, name: str, value: object, low: int = 1, expected: str = ""
    ) -> int:
        """`value` as a Python int if it is an int or NumPy integer (not a bool) ``>= low``;
        else this error, expecting `expected` (default: "a positive int" for ``low == 1``,
        else "an int >= low").

        >>> ArgumentError.check_int("search", "k", 0)
        Traceback (most recent call last):
        ...
        multiembed.errors.ArgumentError: search: k must be a positive int, got 0
        """
        import numpy as np

        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            expected = expected or ("a positive int" if low == 1 else f"an int >= {low}")
            raise cls(where, name, expected, repr(value))
        return int(value)


def describe(x: object) -> str:
    """An argument as an `ArgumentError` names it: shape and dtype of an array, else its type.

    >>> import numpy as np
    >>> describe(np.zeros((3, 4), dtype=np.float32)), describe([1, 2])
    ('[3, 4] float32', 'list')
    """
    import numpy as np  # here, so that `import multiembed` does not load numpy

    if isinstance(x, np.ndarray):
        return f"[{', '.join(str(s) for s in x.shape)}] {x.dtype}"
    return type(x).__name__
