"""Fuzzing the TOML reader: any document gives a `Config` or a `ConfigError`, never a traceback.

Documents mix known sections and keys with unknown ones, values of the right and
wrong types, hostile numbers (huge integers, infinities, NaN, subnormals) and,
now and then, a truncation that breaks the TOML syntax.
"""

import dataclasses
import datetime as dt
import json
import math
import tempfile
import typing
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multiembed.config import Config, load_toml, parse, to_dict
from multiembed.errors import ConfigError

HINTS = {f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)}
SECTIONS = {name: [f.name for f in dataclasses.fields(tp)] for name, tp in HINTS.items()}
KEYS = sorted({k for keys in SECTIONS.values() for k in keys})
CHOICES = sorted(
    {
        str(choice)
        for section in HINTS.values()
        for hint in typing.get_type_hints(section).values()
        if typing.get_origin(hint) is typing.Literal
        for choice in typing.get_args(hint)
    }
)

HOSTILE_INTS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64, 2**70, 10**400]
HOSTILE_FLOATS = [math.inf, -math.inf, math.nan, 1e308, -1e308, 5e-324, -0.0, 1e-300]

scalars = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from(HOSTILE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_FLOATS),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(CHOICES),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.dates(),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), scalars, max_size=3),
)


def typed(hint: Any) -> st.SearchStrategy[Any]:
    """Values of the annotated type, from ordinary to hostile."""
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(0, 64) | st.integers(-(2**70), 2**70) | st.sampled_from(HOSTILE_INTS)
    if hint is float:
        hostile = st.sampled_from(HOSTILE_FLOATS) | st.sampled_from(HOSTILE_INTS)
        return hostile | st.floats(0.0, 1.0) | st.floats()
    if typing.get_origin(hint) is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return st.lists(typed(typing.get_args(hint)[0]), max_size=4)
    return values


FIELDS = {name: typing.get_type_hints(tp) for name, tp in HINTS.items()}
DEFAULTS = {name: to_dict(section()) for name, section in HINTS.items()}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Known keys, mostly with their default (so one hostile value decides), else a value
    of their type from ordinary to hostile, now and then anything at all."""
    doc: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True)):
        # Hypothesis favours the ends of a range: rare branches take a middle value.
        if draw(st.integers(0, 19)) == 7:
            doc[name] = draw(scalars)  # a section that is not a table
            continue
        table = doc[name] = {}
        for key in draw(st.lists(st.sampled_from(SECTIONS[name]), max_size=5, unique=True)):
            pick = draw(st.integers(0, 9))
            if pick < 5 and key in DEFAULTS[name]:
                table[key] = DEFAULTS[name][key]
            else:
                table[key] = draw(values if pick == 6 else typed(FIELDS[name][key]))
        if draw(st.integers(0, 9)) == 7:
            table[draw(st.text(max_size=8))] = draw(values)  # an unknown key
    if draw(st.integers(0, 9)) == 7:
        doc[draw(st.sampled_from(["mystery", "Data", ""]))] = draw(values)  # an unknown section
    return doc


def _key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value).replace("infinity", "inf")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _key(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"


def render(doc: dict[str, Any]) -> str:
    """`doc` as TOML: scalar entries first, then one table per section."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{_key(name)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def _finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


def _load(text: str) -> Config | ConfigError:
    """The config of `text` read from a file, or the error it raised (any other escapes)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.toml"
        path.write_text(text, encoding="utf-8")
        try:
            return load_toml(Config, path)
        except ConfigError as err:
            refused = err
    assert refused.problems, text
    assert str(refused).startswith(f"invalid configuration in {path}"), text
    return refused


def _accepted(cfg: Config, text: str) -> None:
    plain = to_dict(cfg)
    assert _finite(plain), text
    assert parse(Config, plain) == cfg


FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(doc=documents(), cut=st.none() | st.integers(min_value=0, max_value=400))
def test_any_document_is_a_config_or_a_config_error(doc: dict[str, Any], cut: int | None) -> None:
    text = render(doc)
    if cut is not None:
        text = text[:cut]
    cfg = _load(text)
    if isinstance(cfg, ConfigError):
        for problem in cfg.problems:
            assert problem.startswith("not valid TOML") or " = " in problem, (text, problem)
    else:
        _accepted(cfg, text)


@st.composite
def one_setting(draw: st.DrawFn) -> tuple[str, str, Any]:
    section = draw(st.sampled_from(sorted(SECTIONS)))
    key = draw(st.sampled_from(SECTIONS[section]))
    return section, key, draw(typed(FIELDS[section][key]))


@FUZZ
@given(setting=one_setting())
def test_one_hostile_value_is_accepted_sound_or_named(setting: tuple[str, str, Any]) -> None:
    section, key, value = setting
    text = render({section: {key: value}})
    cfg = _load(text)
    if isinstance(cfg, ConfigError):
        assert len(cfg.problems) == 1, cfg.problems
        assert cfg.problems[0].startswith(f"{section}.{key} = "), cfg.problems
    else:
        _accepted(cfg, text)
