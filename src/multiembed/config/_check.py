"""Value rules for config fields: small callables that return a problem or None.

Each rule is a `Check` that also says, in words, what it asks (the config
reference and `multiembed config show` print it). A rule is attached to a
dataclass field through `setting(...)` and is checked both when the dataclass
is constructed in code and when it is read from TOML. A rule over several
fields of one section is a `Cross` in the section's ``_cross`` tuple; it is
judged only when each of its fields passed its own rules.
Whatever its rules, every field's numbers must be finite (`finite`) and its
integers fit in signed 64 bits (`fits_int64`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""TOML integers are signed 64-bit; so are the arrays the settings end up in."""


@dataclass(frozen=True)
class Check:
    """A value rule that can say what it asks: called, it returns the problem or None.

    `text` is the rule as the config reference prints it (``> 0``, ``one of a, b``);
    the problem is `problem` when given, else ``must be <text>``.

    >>> positive(0), positive.text
    ('must be > 0', '> 0')
    """

    text: str
    ok: Callable[[Any], bool]
    problem: str = ""

    def __call__(self, value: Any) -> str | None:
        return None if self.ok(value) else self.problem or f"must be {self.text}"


def setting(default: Any, *rules: Check, doc: str = "") -> Any:
    """A dataclass field with a default, value rules and a one-line description.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Section:
    ...     size: int = setting(8, positive, doc="how many")
    """
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple or a default_factory-free immutable default")
    return field(default=default, metadata={"rules": rules, "doc": doc})


positive = Check("> 0", lambda v: v > 0)
non_negative = Check(">= 0", lambda v: v >= 0)
all_positive = Check(
    "every element > 0", lambda v: all(x > 0 for x in v), "every element must be > 0"
)
all_non_negative = Check(
    "every element >= 0", lambda v: all(x >= 0 for x in v), "every element must be >= 0"
)
non_empty = Check("not empty", lambda v: len(v) > 0, "must not be empty")


def between(lo: float, hi: float) -> Check:
    """Inclusive range rule."""
    return Check(f"between {lo} and {hi}", lambda v: lo <= v <= hi)


def at_most(hi: int) -> Check:
    """Inclusive ceiling, written as TOML accepts it back (``100_000``)."""
    return Check(f"<= {hi:_}", lambda v: v <= hi)


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
        msg = next((m for v in value if (m := fits_int64(v))), None)
        return None if msg is None else "every element " + msg
    return None


@dataclass(frozen=True)
class Cross:
    """A rule over several fields of one section, reported on the first of `keys`.

    `rule` takes the fields' values in `keys` order and returns the problem
    (naming the other fields it involves) or None; `text` says the rule in words
    for the config reference.

    >>> shares = Cross(("b", "a"), lambda b, a: None if a + b < 1 else f"must be < 1 - a ({a})",
    ...                "a + b < 1")
    >>> shares.rule(0.5, 0.5)
    'must be < 1 - a (0.5)'
    """

    keys: tuple[str, ...]
    rule: Callable[..., str | None]
    text: str
