"""Value rules for config fields: small callables that return a problem or None.

A rule is attached to a dataclass field through `setting(...)` and is checked
both when the dataclass is constructed in code and when it is read from TOML.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any

Rule = Callable[[Any], str | None]


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
