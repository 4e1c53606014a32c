"""Value rules for config fields: small callables that return a problem or None.

A rule is attached to a dataclass field through `setting(...)` and is checked
both when the dataclass is constructed in code and when it is read from TOML.
A rule over several fields of one section is a `Cross` in the section's
``_cross`` tuple; it is judged only when each of its fields passed its own rules.
Whatever its rules, every field's numbers must be finite (`finite`) and its
integers fit in signed 64 bits (`fits_int64`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Rule = Callable[[Any], str | None]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""TOML integers are signed 64-bit; so are the arrays the settings end up in."""


def setting(default: Any, *rules: Rule, doc: str = "") -> Any:
    """A dataclass field with a default, value rules and a one-line description.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Section:
    ...     size: int = setting(8, positive, doc="how many")
    """
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple or a default_factory-free immutable default")
    return field(default=default, metadata={"rules": rules, "doc": doc})


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def between(lo: float, hi: float) -> Rule:
    """Inclusive range rule."""

    def rule(value: Any) -> str | None:
        return None if lo <= value <= hi else f"must be between {lo} and {hi}"

    return rule


def one_of(*choices: str) -> Rule:
    def rule(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return rule


def all_positive(value: Any) -> str | None:
    return None if all(v > 0 for v in value) else "every element must be > 0"


def all_non_negative(value: Any) -> str | None:
    return None if all(v >= 0 for v in value) else "every element must be >= 0"


def at_most(hi: int) -> Rule:
    """Inclusive ceiling, written as TOML accepts it back (``100_000``)."""

    def rule(value: Any) -> str | None:
        return None if value <= hi else f"must be <= {hi:_}"

    return rule


def non_empty(value: Any) -> str | None:
    return None if len(value) > 0 else "must not be empty"


def finite(value: Any) -> str | None:
    """Judged before a field's rules: NaN and infinity pass or fail them by accident.

    >>> finite(float("inf"))
    'must be a finite number'
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    return None


def fits_int64(value: Any) -> str | None:
    """Judged after a field's rules, whose ceilings (when any) say more.

    >>> fits_int64((1, 2**64))
    'every element must fit in a signed 64-bit integer'
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return None if INT64_MIN <= value <= INT64_MAX else "must fit in a signed 64-bit integer"
    if isinstance(value, tuple):
        for v in value:
            msg = fits_int64(v)
            if msg:
                return "every element " + msg
    return None


@dataclass(frozen=True)
class Cross:
    """A rule over several fields of one section, reported on the first of `keys`.

    `rule` takes the fields' values in `keys` order and returns the problem
    (naming the other fields it involves) or None.

    >>> shares = Cross(("b", "a"), lambda b, a: None if a + b < 1 else f"must be < 1 - a ({a})")
    >>> shares.rule(0.5, 0.5)
    'must be < 1 - a (0.5)'
    """

    keys: tuple[str, ...]
    rule: Callable[..., str | None]
