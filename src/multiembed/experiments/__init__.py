"""The paper's experiments as reports: each trains, evaluates and writes Markdown and PNGs.

Every experiment is a module with the same entry point::

    run(data_dir: Path, out_dir: Path, *, config: Config, seeds: tuple[int, ...],
        progress: bool = True, workers: int = 1) -> Path   # the report's Markdown file

``workers`` > 1 spreads independent training runs over that many processes
(`multiembed.experiments._runs.run_jobs`) where the experiment has several.

It trains with `multiembed.train.train` into ``out_dir/runs/<model>-seed<s>``
(reused when a finished run with its ``eval.json`` is already there), evaluates
with `multiembed.eval.evaluate.evaluate` and writes ``out_dir/report.md`` and its
plots. `get(name)` imports the module on demand, so an experiment that is not
installed is a clear `UnknownExperimentError`, not an import crash.

Experiments: ``table1`` (Table 1), ``table6`` (Table 6), ``merge`` and
``adaptive_k`` (Section 4.4), ``figure5`` (Figure 5), ``figure6`` (Figure 6),
``table2`` (Table 2) when its module is present, and the simulated online A/B
tests ``online_table3``, ``online_table4``, ``online_table5``, ``online_table7``,
``online_section44`` and ``online_agreement`` (`multiembed.simulate`).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Protocol

from multiembed.config import Config
from multiembed.errors import MultiembedError

EXPERIMENTS: dict[str, str] = {
    "table1": "single-embedding vs. implicit multi-embedding models: HR@100, HR@1000 (Table 1)",
    "table2": "explicit interests: Conditional Retrieval (Table 2)",
    "table6": "DCM ablation: validity-aware FPI, single-assignment routing, clusters (Table 6)",
    "merge": "round-robin vs. global top-k; budgets by importance vs. equal (Section 4.4)",
    "adaptive_k": "fixed vs. adaptive number of clusters per user (Section 4.4)",
    "figure5": "a user's sequence and cluster centroids in 2-D (Figure 5)",
    "figure6": "case study: a user's history and each embedding's candidates (Figure 6)",
    "online_table3": "simulated online A/B test: CR added to the legacy topic retriever (Table 3)",
    "online_table4": "simulated online A/B test: implicit models added to legacy + CR (Table 4)",
    "online_table5": "simulated online A/B test: DCM + CR vs. the single embedding (Table 5)",
    "online_table7": "simulated online A/B test: the explicit-interest lift by cohort (Table 7)",
    "online_section44": "simulated online A/B test: global top-k merge, adaptive K (Section 4.4)",
    "online_agreement": "offline HR@100 and coverage against the online lifts of Tables 3-5",
}


class Experiment(Protocol):
    """An experiment module."""

    def run(
        self,
        data_dir: Path,
        out_dir: Path,
        *,
        config: Config,
        seeds: tuple[int, ...],
        progress: bool = True,
        workers: int = 1,
    ) -> Path: ...


class UnknownExperimentError(MultiembedError):
    """An experiment name that is not registered or whose module is not installed."""


def _module_name(name: str) -> str:
    return f"multiembed.experiments.{name}"


def available() -> list[str]:
    """Registered experiments whose module exists, in registry order."""
    return [n for n in EXPERIMENTS if importlib.util.find_spec(_module_name(n)) is not None]


def default_workers() -> int:
    """Worker processes experiments use by default: one per core, at most 2
    (`multiembed.experiments._runs.default_workers`; imported on demand, since it
    brings in the training stack)."""
    from multiembed.experiments._runs import default_workers as workers

    return workers()


def get(name: str) -> Experiment:
    """The experiment module `name`, imported now.

    Raises:
        UnknownExperimentError: `name` is not registered or its module is missing.
    """
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(
            f"unknown experiment {name!r} (expected one of: {', '.join(available())})"
        )
    if importlib.util.find_spec(_module_name(name)) is None:
        raise UnknownExperimentError(
            f"experiment {name!r} is registered but its module {_module_name(name)} is not "
            f"installed (available: {', '.join(available())})"
        )
    module: Experiment = importlib.import_module(_module_name(name))
    return module


__all__ = ["EXPERIMENTS", "Experiment", "UnknownExperimentError", "available", "get"]
