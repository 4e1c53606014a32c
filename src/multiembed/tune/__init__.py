"""Hyper-parameter search: an Optuna study over settings declared in TOML.

- `load_space(path, base)` reads a ``[search]`` table (trials, the validation
  metric to maximise, the sampler's seed, pruning, and ``[search.space]``: a
  range or a list of choices per ``model.*``, ``train.*`` or ``examples.*``
  setting) and checks every bound and choice against the base configuration's
  rules, reporting all problems in one `ConfigError`.
- `tune(data_dir, space, out_dir, config=base)` runs the trials (seeded TPE,
  median pruning on the validation metric after each validation, each trial a
  training run in ``OUT/trials/NNN``), keeps the study in ``OUT/study.db`` so
  that running it again resumes, and writes ``results.md``, ``results.json``
  and ``best.toml`` (the best trial's whole configuration, ready for
  ``multiembed train --config``).
- `configured(base, values)` is a trial's configuration.

The metric is read on the held-out *validation* users (``split.valid_share``),
never the test users that ``multiembed evaluate`` reports on. Optuna is an
optional dependency (``pip install 'multiembed[tune]'``); without it `tune`
raises a `TuneError` that says so.
"""

from multiembed.tune._report import TrialRecord
from multiembed.tune._space import (
    Choices,
    Dimension,
    Range,
    SearchSpace,
    configured,
    load_space,
    parse_space,
)
from multiembed.tune._study import TuneResult, tune
from multiembed.tune.errors import TuneError

__all__ = [
    "Choices",
    "Dimension",
    "Range",
    "SearchSpace",
    "TrialRecord",
    "TuneError",
    "TuneResult",
    "configured",
    "load_space",
    "parse_space",
    "tune",
]
