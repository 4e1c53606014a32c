"""Typed, frozen configuration read from TOML with every problem reported at once.

Sections are frozen keyword-only dataclasses whose fields carry value rules
(`setting`). `parse(cls, mapping)` builds one from nested dicts and collects
all problems — unknown keys, wrong types, values out of range — into a single
`ConfigError` whose lines read `section.key = value: rule`. Constructing a
section in code runs the same value and cross-field rules (`__post_init__`).
"""

from __future__ import annotations

import dataclasses
import sys
import tomllib
import types
import typing
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from multiembed.config._check import finite, fits_int64
from multiembed.errors import ConfigError

T = TypeVar("T")


class Section:
    """Mixin for config dataclasses: runs the field and cross-field rules on construction."""

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        fields, cross = _value_problems(type(self), values, _section_name(type(self)))
        if fields or cross:
            raise ConfigError([*fields.values(), *cross])


def _section_name(cls: type) -> str:
    return getattr(cls, "_section", cls.__name__)


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, list | tuple):  # as TOML writes a list
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return repr(value)


def _value_problems(
    cls: type,
    values: dict[str, Any],
    prefix: str,
    refused: Collection[str] = (),
    given: Collection[str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Problems of `values` (every field of `cls` but those `refused` already).

    Returns the problem of each field by name, then those of the cross-field rules
    whose fields all passed their own rules. A cross-field problem is named after its
    rule's first field, or, where that one was not `given` (a TOML document's keys),
    after the first that was; a given field is named once, by the first cross-field
    rule it fails.
    """
    fields: dict[str, str] = {}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in refused or f.name not in values:
            continue
        value = values[f.name]
        rules = (finite, *f.metadata.get("rules", ()), fits_int64)
        msg = next((m for rule in rules if (m := rule(value))), None)
        if msg is None and (hints[f.name] is bool or get_origin(hints[f.name]) is typing.Literal):
            msg = _type_problem(value, hints[f.name])  # a section built in code skips parse
        if msg:
            fields[f.name] = f"{prefix}.{f.name} = {_fmt(value)}: {msg}"
    cross: list[str] = []
    failed: set[str] = set()  # the given fields of the cross-field rules that failed
    for c in getattr(cls, "_cross", ()):
        if any(k in fields or k in refused or k in failed for k in c.keys):
            continue
        msg = c.rule(*(values[k] for k in c.keys))
        if msg:
            first = f"{prefix}.{c.keys[0]} = {_fmt(values[c.keys[0]])}: {msg}"
            named = c.keys[0] if given is None else next((k for k in c.keys if k in given), "")
            if named and named != c.keys[0]:
                first = f"{prefix}.{named} = {_fmt(values[named])}: {first}"
            cross.append(first)
            failed.update(k for k in c.keys if given is not None and k in given)
    return fields, cross


def _type_problem(value: Any, tp: Any) -> str | None:
    """Returns a message when `value` (from TOML) does not fit annotation `tp`."""
    origin = get_origin(tp)
    if tp is Any:
        return None
    if origin is typing.Literal:
        choices = get_args(tp)
        return None if value in choices else "must be one of " + ", ".join(map(str, choices))
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        msgs = [_type_problem(value, a) for a in args if a is not type(None)]
        return None if any(m is None for m in msgs) else msgs[0]
    if tp is bool:
        return None if isinstance(value, bool) else "must be a boolean"
    if tp is int:
        return (
            None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
        )
    if tp is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return "must be a number"
        return None if abs(value) <= sys.float_info.max else "must be a finite number"
    if tp is str:
        return None if isinstance(value, str) else "must be a string"
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return "must be a list"
        args = get_args(tp)
        elem = args[0] if args else Any
        msg = next((m for v in value if (m := _type_problem(v, elem))), None)
        return None if msg is None else "every element " + msg
    if origin is dict or dataclasses.is_dataclass(tp):
        return None if isinstance(value, dict) else "must be a table"
    return None


def _coerce(value: Any, tp: Any) -> Any:
    """Converts TOML values to the annotated Python type (lists to tuples, ints to floats)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        for a in get_args(tp):
            if a is not type(None) and _type_problem(value, a) is None:
                return _coerce(value, a)
    if tp is float and isinstance(value, int):
        return float(value)
    if origin is tuple:
        args = get_args(tp)
        elem = args[0] if args else Any
        return tuple(_coerce(v, elem) for v in value)
    if origin is dict:
        return dict(value)
    return value


def _collect(cls: type[T], data: Any, prefix: str, problems: list[str]) -> T | None:
    if not isinstance(data, dict):
        problems.append(f"{prefix} = {_fmt(data)}: must be a table")
        return None
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"{prefix}.{key} = {_fmt(data[key])}: unknown key (known: {known})")
    kwargs: dict[str, Any] = {}
    start = len(problems)
    refused: dict[str, str] = {}  # fields whose TOML value has the wrong type
    for name in fields:
        if name not in data:
            continue
        tp = hints[name]
        value = data[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            sub = _collect(tp, value, f"{prefix}.{name}", problems)  # type: ignore[arg-type]
            if sub is not None:
                kwargs[name] = sub
            continue
        msg = _type_problem(value, tp)
        if msg:
            refused[name] = f"{prefix}.{name} = {_fmt(value)}: {msg}"
        else:
            kwargs[name] = _coerce(value, tp)
    values = {**_defaults(fields.values()), **kwargs}
    judged, cross = _value_problems(cls, values, prefix, refused, given=data.keys())
    by_field = refused | judged
    problems.extend(by_field[name] for name in fields if name in by_field)
    problems.extend(cross)
    if len(problems) > start:
        return None
    try:
        return cls(**kwargs)
    except ConfigError as err:  # rules a section's own __post_init__ raises
        problems.extend(err.problems)
        return None


def _defaults(fields: Iterable[dataclasses.Field[Any]]) -> dict[str, Any]:
    out = {}
    for f in fields:
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def parse(cls: type[T], data: dict[str, Any], *, source: str | None = None) -> T:
    """Builds config `cls` from nested dicts, raising one ConfigError listing every problem."""
    problems: list[str] = []
    prefix = _section_name(cls)
    hints = get_type_hints(cls)
    if getattr(cls, "_root", False):
        # The root's fields are the TOML's top-level tables: no prefix.
        fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for key in data:
            if key not in fields:
                known = ", ".join(sorted(fields))
                problems.append(f"{key} = {_fmt(data[key])}: unknown section (known: {known})")
        kwargs = {}
        for name in fields:
            if name in data:
                sub = _collect(hints[name], data[name], name, problems)
                if sub is not None:
                    kwargs[name] = sub
        if problems:
            raise ConfigError(problems, source)
        return cls(**kwargs)
    obj = _collect(cls, data, prefix, problems)
    if problems or obj is None:
        raise ConfigError(problems, source)
    return obj


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML document at `path`; a missing, non-UTF-8 or malformed file is a ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(["file is not UTF-8 text"], str(path)) from None
    return loads_toml(text, str(path))


def loads_toml(text: str, source: str) -> dict[str, Any]:
    """The TOML document `text`; malformed TOML is a ConfigError naming `source`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"not valid TOML: {err}"], source) from None


def load_toml(cls: type[T], path: str | Path) -> T:
    """Reads a TOML file into config `cls`; a missing or malformed file is a ConfigError."""
    return parse(cls, read_toml(path), source=str(path))


def to_dict(obj: Any) -> dict[str, Any]:
    """A config as plain nested dicts and lists (TOML/JSON ready; None values omitted)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        elif value is not None:
            out[f.name] = value
    return out
