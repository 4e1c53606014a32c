"""Typed errors of offline evaluation.

`MetricInputError` is a bad argument to a metric function (a shape, a dtype, a
non-finite value, an empty set where a share is asked for). It derives from
`MultiembedError`, so the command line prints it without a traceback, and it
says what was expected and what was found.
"""

from __future__ import annotations

from multiembed.errors import ArgumentError


class MetricInputError(ArgumentError):
    """An argument to a metric function has the wrong shape, dtype or value.

    >>> str(MetricInputError("hit_rate_at_k", "ks", "positive ints", "[0]"))
    'hit_rate_at_k: ks must be positive ints, got [0]'
    """
