"""The report of an evaluation: per-segment tables, the JSON file, seeds summarised."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multiembed._files import atomic_write_bytes
from multiembed.config import EvalConfig, to_dict
from multiembed.eval._ranking import hit_rate_at_k
from multiembed.eval._records import EvalData, corpus_position
from multiembed.eval._sets import SEGMENTS, mean_std
from multiembed.eval.errors import MetricInputError
from multiembed.retrieve import PlanSettings

FORMAT_VERSION = 1
EXPLICIT_SEED = 0
"""Seed of `sample_topics` for the served list's K_ex followed topics."""


class Collected:
    """Per-record and per-user arrays; NaN marks "not defined for this unit"."""

    def __init__(self, n_records: int, n_users: int) -> None:
        self.n_records, self.n_users = n_records, n_users
        self.ranks: dict[str, np.ndarray] = {}  # name -> [R] ranks (NaN: not evaluated)
        self.record: dict[str, np.ndarray] = {}  # name -> [R] values
        self.user: dict[str, np.ndarray] = {}  # name -> [U] values

    def record_array(self, name: str) -> np.ndarray:
        return self.record.setdefault(name, np.full(self.n_records, np.nan))

    def user_array(self, name: str) -> np.ndarray:
        return self.user.setdefault(name, np.full(self.n_users, np.nan))


def _mean(values: np.ndarray) -> float | None:
    defined = values[np.isfinite(values)]
    return float(defined.mean()) if defined.size else None


def build_report(
    data: EvalData, config: EvalConfig, settings: PlanSettings, out: Collected, ties: str
) -> dict[str, Any]:
    """The report (see `multiembed.eval.evaluate`): every metric averaged per segment.

    Ranks become ``<name>@K`` hit rates over the records where they are defined;
    per-record and per-user arrays are averaged over their finite entries (None
    when the segment has none).
    """
    rec = data.records
    record_segment = rec.segment[rec.user_index]
    segments: dict[str, Any] = {}
    for name in ("all", *SEGMENTS):
        code = -1 if name == "all" else SEGMENTS.index(name)  # -1: every unit
        r_mask = (record_segment == code) | (code < 0)
        u_mask = (rec.segment == code) | (code < 0)
        metrics: dict[str, float | None] = {}
        counts = {"n_records": int(r_mask.sum()), "n_users": int(u_mask.sum())}
        for key, ranks in out.ranks.items():
            chosen = ranks[r_mask & ~np.isnan(ranks)]
            hr = hit_rate_at_k(chosen, config.ks) if chosen.size else {}
            for k in config.ks:
                metrics[f"{key}@{k}"] = hr.get(k)
            if key != "hr":
                counts[f"n_{key}_records"] = int(chosen.size)
        for key, values in sorted(out.user.items()):
            metrics[key] = _mean(values[u_mask])
            if key.startswith(("coverage", "overlap")):
                counts[f"n_{key}_users"] = int(np.isfinite(values[u_mask]).sum())
        for key, values in sorted(out.record.items()):
            metrics[key] = _mean(values[r_mask])
        segments[name] = {**counts, "metrics": metrics}
    in_corpus = corpus_position(data.corpus, rec.target) >= 0
    return {
        "format_version": FORMAT_VERSION,
        "protocol": data.protocol,
        "ties": ties,
        "eval_config": to_dict(config),
        "corpus": {
            "size": int(data.corpus.size),
            "requested": config.corpus_size,
            "positives_in_corpus": float(in_corpus.mean()),
        },
        "plan": {
            "budget": settings.total,
            "k_ex": settings.k_ex,
            "floor": settings.floor,
            "overfetch": settings.overfetch,
            "implicit_share": settings.implicit_share,
            "topic_seed": EXPLICIT_SEED,
            "relevance_filter": settings.relevance_filter,
        },
        "records": {"available": data.n_records_available, "evaluated": len(rec)},
        "segments": segments,
    }


def write_report(report: Mapping[str, Any], path: Path) -> None:
    """Write JSON atomically (temporary file, fsync, rename); NaN is refused."""
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode())


def summarize_seeds(reports: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation of every metric over reports of several seeds.

    Returns:
        ``{segment: {metric: {"mean", "std", "n"}}}`` over the reports where the
        metric is defined (not null); a metric defined in none is left out.

    >>> a = {"segments": {"all": {"metrics": {"hr@50": 0.25, "overlap": None}}}}
    >>> b = {"segments": {"all": {"metrics": {"hr@50": 0.75, "overlap": None}}}}
    >>> summarize_seeds([a, b])
    {'all': {'hr@50': {'mean': 0.5, 'std': 0.3535533905932738, 'n': 2}}}
    """
    if not reports:
        raise MetricInputError("summarize_seeds", "reports", "at least one report", "none")
    out: dict[str, dict[str, Any]] = {}
    for segment in reports[0]["segments"]:
        names = reports[0]["segments"][segment]["metrics"]
        table = {}
        for name in names:
            values = [
                r["segments"][segment]["metrics"].get(name)
                for r in reports
                if segment in r["segments"]
            ]
            defined = [v for v in values if v is not None and math.isfinite(v)]
            if defined:
                table[name] = mean_std(defined)._asdict()
        out[segment] = table
    return out
