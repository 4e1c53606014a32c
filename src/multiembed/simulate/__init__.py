"""Simulated online A/B tests in the synthetic world (the paper's Section 4.3).

The synthetic world knows every user's true interests, so the online side of
the paper can be asked before launch: which retrieval makes users save more,
and adopt more topics?

- `load_population`: the users (true interests, followed topics, history,
  activity level, cohort) and items of a prepared synthetic data directory.
- `Arm`: candidate sources merged by the serving plan of `multiembed.retrieve`
  (budgets, round-robin); sources are trained runs (`build_arm`), the legacy
  topic retriever (`LegacyTopicSource`), or the `OracleSource` and
  `RandomSource` references.
- `simulate`: days of sessions; one shared ranking stage (a fixed noisy scorer of
  the true interest) shows the top ``N``; engagements (clicks, saves) drawn from
  the true interest, logged with the arm and the explicit topic that produced
  them. Every user runs in every arm with the same draws (paired).
- `user_metrics`, `compare`: saves and adopted topics per user, lifts against the
  control with bootstrap intervals, overall and by cohort (core, casual,
  marginal, resurrected, new).
- `spearman`: the rank correlation of offline metrics and online lifts across arms.
- `run_simulation`: all of it from run directories to a report folder;
  `load_comparisons` reads its ``lifts.json`` back, `fmt_lift` and `markdown_table` write
  Markdown as its report does.

>>> from multiembed.simulate import SimulationConfig
>>> SimulationConfig(days=7).days
7
"""

from multiembed.simulate._arm import KINDS, Arm, Served, serve_day
from multiembed.simulate._config import SimulationConfig
from multiembed.simulate._loop import SimLog, simulate
from multiembed.simulate._metrics import (
    METRICS,
    SEGMENTS,
    Comparison,
    Lift,
    adopted_topics,
    bootstrap_lift,
    compare,
    spearman,
    user_metrics,
)
from multiembed.simulate._population import COHORTS, Population, cohorts, load_population
from multiembed.simulate._report import (
    LIFTS_FILE,
    REPORT_FILE,
    SEGMENT_LABELS,
    fmt_lift,
    load_comparisons,
    markdown_table,
    run_simulation,
)
from multiembed.simulate._runs import build_arm, parse_arm
from multiembed.simulate._sources import (
    EXPLICIT,
    IMPLICIT,
    CandidateSource,
    DayRequest,
    LegacyTopicSource,
    OracleSource,
    RandomSource,
    SourceLists,
)

__all__ = [
    "COHORTS",
    "EXPLICIT",
    "IMPLICIT",
    "KINDS",
    "LIFTS_FILE",
    "METRICS",
    "REPORT_FILE",
    "SEGMENTS",
    "SEGMENT_LABELS",
    "Arm",
    "CandidateSource",
    "Comparison",
    "DayRequest",
    "LegacyTopicSource",
    "Lift",
    "OracleSource",
    "Population",
    "RandomSource",
    "Served",
    "SimLog",
    "SimulationConfig",
    "SourceLists",
    "adopted_topics",
    "bootstrap_lift",
    "build_arm",
    "cohorts",
    "compare",
    "fmt_lift",
    "load_comparisons",
    "load_population",
    "markdown_table",
    "parse_arm",
    "run_simulation",
    "serve_day",
    "simulate",
    "spearman",
    "user_metrics",
]
