"""The search space of `multiembed tune`: read from TOML, checked against the base config.

A space file holds one table, ``[search]``, and its ``[search.space]``::

    [search]
    trials = 20              # trials in all; a resumed search counts those already done
    metric = "hr@100"        # validation metric to maximise (held-out validation users)
    seed = 0                 # seed of the TPE sampler
    timeout = 3600           # optional: start no trial after this many seconds
    prune = true             # stop trials whose validation falls below the median
    startup_trials = 2       # trials that complete before any trial is pruned
    warmup = 1               # validations of each trial that are never pruned

    [search.space]
    "model.temperature" = { low = 0.05, high = 0.5, log = true }
    "model.k" = { choices = [2, 4, 7] }
    "train.lr" = { low = 1e-4, high = 1e-2, log = true }
    "train.batch_size" = { low = 64, high = 512, step = 64 }

A key is a setting ``section.key`` of the ``model``, ``train`` or ``examples``
table (``[search.space.model]`` with bare keys works too). A range
(``low``, ``high``, optional ``log`` or ``step``) fits number and integer
settings; ``choices`` fits any. Every bound and choice must be a value the
setting's own rules accept over the base configuration, and the metric one that
validation measures; all problems are reported at once in one `ConfigError`.

>>> from multiembed.config import Config
>>> space = {"model.k": {"choices": [2, 4]}, "train.lr": {"low": 1e-3, "high": 1e-2}}
>>> checked = parse_space({"search": {"trials": 3, "metric": "hr@100", "space": space}}, Config())
>>> checked.keys, checked.trials
(('model.k', 'train.lr'), 3)
>>> space = {"model.temprature": {"low": 0.1, "high": 0.5}}
>>> parse_space({"search": {"trials": 3, "metric": "hr@100", "space": space}}, Config())
Traceback (most recent call last):
...
multiembed.errors.ConfigError: invalid configuration (1 problem(s)):
  search.space."model.temprature": unknown setting (did you mean model.temperature?)
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multiembed.config import (
    Config,
    SettingInfo,
    merge_documents,
    parse,
    read_toml,
    settings,
    to_dict,
)
from multiembed.config import toml_value as _show
from multiembed.errors import ConfigError
from multiembed.train import validation_ks

TUNABLE = ("model", "train", "examples")
"""Tables whose settings a search may vary."""
FIXED_SECTIONS = {
    "split": "they choose the validation users the trials are compared on",
    "eval": "they define the validation corpus and cut-offs the trials are compared on",
    "data": "they apply when data is prepared, not when a model trains",
    "synthetic": "they apply when data is prepared, not when a model trains",
}
FIXED_KEYS = {
    "train.validation": "the trials are compared by validation, so it stays true",
    "train.validation_records": "it defines the validation slice the trials are compared on",
    "model.kind": "it decides which metric validation measures (hr@K or explicit_hr@K)",
}
SPEC_KEYS = frozenset({"low", "high", "log", "step", "choices"})
SEARCH_KEYS = ("trials", "metric", "seed", "timeout", "prune", "startup_trials", "warmup", "space")
MAX_TRIALS = 100_000
METRIC = re.compile(r"(explicit_)?hr@(\d+)")


@dataclass(frozen=True)
class Range:
    """A number or integer setting drawn from ``[low, high]`` (on a log scale, or by ``step``)."""

    key: str
    low: float
    high: float
    integer: bool
    log: bool = False
    step: float | None = None


@dataclass(frozen=True)
class Choices:
    """A setting drawn from a list of values."""

    key: str
    values: tuple[Any, ...]


Dimension = Range | Choices


@dataclass(frozen=True)
class SearchSpace:
    """A checked ``[search]`` table: what to vary, what to maximise, and how long."""

    trials: int
    metric: str
    dimensions: tuple[Dimension, ...]
    seed: int = 0
    timeout: float | None = None
    prune: bool = True
    startup_trials: int = 2
    warmup: int = 1
    source: str | None = field(default=None, compare=False)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.dimensions)

    def document(self) -> dict[str, Any]:
        """What identifies the search (for resuming): the space and the metric."""
        dims = [
            {"key": d.key, "low": d.low, "high": d.high, "log": d.log, "step": d.step}
            if isinstance(d, Range)
            else {"key": d.key, "choices": list(d.values)}
            for d in self.dimensions
        ]
        return {"metric": self.metric, "space": dims}


def load_space(path: str | Path, base: Config) -> SearchSpace:
    """Reads and checks the space file at `path` against the base configuration `base`.

    Raises:
        ConfigError: a missing or malformed file, or every problem of the space at once.
    """
    return parse_space(read_toml(path), base, source=str(path))


def parse_space(data: dict[str, Any], base: Config, *, source: str | None = None) -> SearchSpace:
    """Checks a space document (`load_space`'s TOML, as dicts) against `base`."""
    problems: list[str] = []
    for key in data:
        if key != "search":
            problems.append(f"{key}: unknown table (a space file holds [search] only)")
    search = data.get("search")
    if not isinstance(search, dict):
        problems.append("search: missing table [search] (with trials, metric and [search.space])")
        raise ConfigError(problems, source)
    for key in search:
        if key not in SEARCH_KEYS:
            problems.append(f"search.{key}: unknown key (known: {', '.join(SEARCH_KEYS)})")
    trials = _integer(search, "trials", None, 1, MAX_TRIALS, problems)
    seed = _integer(search, "seed", 0, 0, 2**63 - 1, problems)
    startup = _integer(search, "startup_trials", 2, 0, MAX_TRIALS, problems)
    warmup = _integer(search, "warmup", 1, 0, 2**31 - 1, problems)
    timeout = search.get("timeout")
    if timeout is not None and not _positive_number(timeout):
        problems.append(f"search.timeout = {_show(timeout)}: must be a number of seconds > 0")
    prune = search.get("prune", True)
    if not isinstance(prune, bool):
        problems.append(f"search.prune = {_show(prune)}: must be true or false")
    metric = _metric(search.get("metric"), base, problems)
    known = {s.key: s for s in settings(base)}
    table = search.get("space")
    dimensions: list[Dimension] = []
    if not isinstance(table, dict) or not table:
        problems.append(
            'search.space: missing or empty table (e.g. "train.lr" = { low = 1e-4, high = 1e-2 })'
        )
    else:
        for key, spec in _flatten(table):
            try:
                dimensions.append(_dimension(key, spec, known, base))
            except _Refused as err:
                problems += err.args
    if problems or trials is None or metric is None:  # a missing one is a problem
        raise ConfigError(problems, source)
    return SearchSpace(
        trials=trials,
        metric=metric,
        dimensions=tuple(dimensions),
        seed=seed or 0,
        timeout=None if timeout is None else float(timeout),
        prune=prune,
        startup_trials=startup or 0,
        warmup=warmup or 0,
        source=source,
    )


def configured(base: Config, values: dict[str, Any]) -> Config:
    """`base` with ``{"section.key": value}`` laid on it, checked by the config's rules.

    >>> configured(Config(), {"model.k": 2, "train.lr": 0.01}).model.k
    2

    Raises:
        ConfigError: a value (or a combination of values) the settings' rules refuse.
    """
    over: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        over.setdefault(section, {})[name] = value
    return parse(Config, merge_documents(to_dict(base), over))


def _integer(
    search: dict[str, Any], key: str, default: int | None, lo: int, hi: int, problems: list[str]
) -> int | None:
    value = search.get(key, default)
    if value is None:
        problems.append(f"search.{key}: missing (an integer >= {lo})")
    elif isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.append(f"search.{key} = {_show(value)}: must be an integer from {lo} to {hi:_}")
        return None
    return value


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e18


def _metric(value: Any, base: Config, problems: list[str]) -> str | None:
    explicit = base.model.kind == "explicit"
    prefix = "explicit_hr@" if explicit else "hr@"
    measured = ", ".join(f"{prefix}{k}" for k in validation_ks(base))
    if value is None:
        problems.append(f"search.metric: missing (measured by validation: {measured})")
        return None
    match = METRIC.fullmatch(value) if isinstance(value, str) else None
    if match is None or bool(match.group(1)) != explicit:
        problems.append(
            f"search.metric = {_show(value)}: not a metric validation measures for a "
            f"model.kind = {_show(base.model.kind)} model (measured: {measured})"
        )
        return None
    if int(match.group(2)) not in validation_ks(base):
        problems.append(
            f"search.metric = {_show(value)}: validation measures {measured}; to tune "
            f"another cut-off add it to eval.ks in the base configuration"
        )
        return None
    if not base.train.validation:
        problems.append(
            f"search.metric = {_show(value)}: the base configuration sets train.validation = "
            "false; the search reads the validation metric, so set it to true"
        )
        return None
    return value


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``("section.key", spec)`` pairs of a space table, whether keys are dotted or nested."""
    out = []
    for key, value in table.items():
        if isinstance(value, dict) and value and not (value.keys() & SPEC_KEYS):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _label(key: str) -> str:
    return f'search.space."{key}"'


class _Refused(Exception):
    """An entry of ``[search.space]`` that cannot be searched; its args are the problems."""


def _dimension(key: str, spec: Any, known: dict[str, SettingInfo], base: Config) -> Dimension:
    label = _label(key)
    section = key.split(".", 1)[0]
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f"did you mean {close[0]}?" if close else 'expected "section.key", e.g. "model.k"'
        raise _Refused(f"{label}: unknown setting ({hint})")
    if section not in TUNABLE:
        reason = FIXED_SECTIONS.get(section, "")
        raise _Refused(
            f"{label}: {section} settings cannot be tuned ({reason}); tunable: "
            + ", ".join(f"{s}.*" for s in TUNABLE)
        )
    if key in FIXED_KEYS:
        raise _Refused(f"{label}: cannot be tuned ({FIXED_KEYS[key]})")
    if not isinstance(spec, dict) or not spec:
        raise _Refused(
            f"{label} = {_show(spec)}: must be a table {{ low = ..., high = ... }} or "
            "{ choices = [...] }"
        )
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise _Refused(
            f"{label}: unknown key {', '.join(unknown)} (known: low, high, log, step, choices)"
        )
    if "choices" in spec:
        return _choices(key, spec, base)
    return _range(key, spec, known[key], base)


def _choices(key: str, spec: dict[str, Any], base: Config) -> Choices:
    label = _label(key)
    extra = sorted(set(spec) - {"choices"})
    values = spec["choices"]
    if extra:
        raise _Refused(f"{label}: choices cannot go with {', '.join(extra)}")
    if not isinstance(values, list) or not values:
        raise _Refused(f"{label}.choices = {_show(values)}: must be a non-empty list")
    if any(isinstance(v, dict | list) for v in values):
        raise _Refused(f"{label}.choices = {_show(values)}: every choice must be a single value")
    if len({(type(v), v) for v in values}) != len(values):
        raise _Refused(f"{label}.choices = {_show(values)}: a choice is listed twice")
    for v in values:
        if refused := _refusal(key, v, f"{label}: choice", base):
            raise _Refused(refused)  # the first refused choice only
    return Choices(key, tuple(values))


def _range(key: str, spec: dict[str, Any], info: SettingInfo, base: Config) -> Range:
    label = _label(key)
    if info.kind not in ("integer", "number"):
        raise _Refused(
            f"{label}: a range needs a number setting; {key} is a {info.kind} "
            f"({info.rule or 'any value'}): list its values as choices = [...]"
        )
    integer = info.kind == "integer"
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        raise _Refused(f"{label}: missing {' and '.join(missing)} (or give choices = [...])")
    problems = []
    for bound in ("low", "high", "step"):
        value = spec.get(bound)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{label}.{bound} = {_show(value)}: must be a number")
        elif integer and not isinstance(value, int):
            problems.append(f"{label}.{bound} = {_show(value)}: {key} takes integers")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        problems.append(f"{label}.log = {_show(log)}: must be true or false")
    if problems:
        raise _Refused(*problems)
    low, high, step = spec["low"], spec["high"], spec.get("step")
    if not low < high:
        problems.append(f"{label}: low ({_show(low)}) must be < high ({_show(high)})")
    if log and low <= 0:
        problems.append(f"{label}: log = true needs low > 0 (got {_show(low)})")
    if step is not None and step <= 0:
        problems.append(f"{label}.step = {_show(step)}: must be > 0")
    if step is not None and log:
        problems.append(f"{label}: step and log = true cannot go together")
    if problems:
        raise _Refused(*problems)
    refused = [_refusal(key, v, f"{label}: {b}", base) for b, v in (("low", low), ("high", high))]
    if any(refused):
        raise _Refused(*filter(None, refused))
    as_type = int if integer else float
    step = None if step is None else as_type(step)
    return Range(key, as_type(low), as_type(high), integer=integer, log=log, step=step)


def _refusal(key: str, value: Any, what: str, base: Config) -> str | None:
    """Why `base` with ``key = value`` is not a valid config; None when it is."""
    try:
        configured(base, {key: value})
    except ConfigError as err:
        return f"{what} {_show(value)} is refused: {'; '.join(err.problems)}"
    return None
