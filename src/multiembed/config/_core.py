"""Typed, frozen configuration read from TOML with every problem reported at once.

Sections are frozen keyword-only dataclasses whose fields carry value rules
(`setting`). `parse(cls, mapping)` builds one from nested dicts and collects
all problems — unknown keys, wrong types, values out of range — into a single
`ConfigError` whose lines read `section.key = value: rule`. Constructing a
section in code runs the same value rules (`validate` in `__post_init__`).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from multiembed.errors import ConfigError

T = TypeVar("T")


class Section:
    """Mixin for config dataclasses: runs the field rules on construction."""

    def __post_init__(self) -> None:
        problems = _rule_problems(self, prefix=_section_name(type(self)))
        if problems:
            raise ConfigError(problems)


def _section_name(cls: type) -> str:
    return getattr(cls, "_section", cls.__name__)


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


def _rule_problems(obj: Any, prefix: str) -> list[str]:
    problems: list[str] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        for rule in f.metadata.get("rules", ()):
            msg = rule(value)
            if msg:
                problems.append(f"{prefix}.{f.name} = {_fmt(value)}: {msg}")
                break
    return problems


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
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be an integer"
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "must be a number"
    if tp is str:
        return None if isinstance(value, str) else "must be a string"
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return "must be a list"
        args = get_args(tp)
        elem = args[0] if args else Any
        for v in value:
            msg = _type_problem(v, elem)
            if msg:
                return "every element " + msg.removeprefix("must ")
        return None
    if origin is dict:
        return None if isinstance(value, dict) else "must be a table"
    if dataclasses.is_dataclass(tp):
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
    for name, f in fields.items():
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
            problems.append(f"{prefix}.{name} = {_fmt(value)}: {msg}")
            continue
        value = _coerce(value, tp)
        for rule in f.metadata.get("rules", ()):
            rule_msg = rule(value)
            if rule_msg:
                problems.append(f"{prefix}.{name} = {_fmt(value)}: {rule_msg}")
                break
        else:
            kwargs[name] = value
    if len(problems) > start:
        return None
    try:
        return cls(**kwargs)
    except ConfigError as err:  # cross-field rules raised by __post_init__
        problems.extend(err.problems)
        return None


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


def load_toml(cls: type[T], path: str | Path) -> T:
    """Reads a TOML file into config `cls`; a missing or malformed file is a ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(["file is not UTF-8 text"], str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"not valid TOML: {err}"], str(path)) from None
    return parse(cls, data, source=str(path))


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
