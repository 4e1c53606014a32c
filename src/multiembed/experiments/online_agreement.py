"""Offline-online agreement: do the offline metrics rank the arms of Tables 3-5 as the
simulated A/B tests do?

Trains every run of `online_table3`, `online_table4` and `online_table5` once
(runs shared by tables are trained once, into ``out_dir/runs``), simulates each
table into ``out_dir/<table>/`` and writes ``out_dir/report.md``: for every
treatment arm, the offline metric of the run it adds to its control (filtered or
unfiltered HR@100 for CR as the arm serves it, HR@100 for implicit models) and
that run's interest coverage, next to the arm's online lifts in saves and
adopted topics; then the Spearman rank correlation between offline and online
across the arms of each table and of all tables together, with the number of
arms. The paper cites the offline-online discrepancy; a handful of arms says
little either way, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np

from multiembed.config import Config
from multiembed.experiments import online_table3, online_table4, online_table5
from multiembed.experiments._online import (
    OnlineTable,
    Overrides,
    simulate_table,
    train_runs,
)
from multiembed.experiments._runs import RunResult
from multiembed.simulate import (
    LIFTS_FILE,
    REPORT_FILE,
    Comparison,
    SimulationConfig,
    fmt_lift,
    load_comparisons,
    markdown_table,
    spearman,
)

TITLE = "Offline-online agreement (simulated): Tables 3, 4 and 5"
TABLES: Final[Mapping[str, OnlineTable]] = {
    "table3": online_table3.TABLE,
    "table4": online_table4.TABLE,
    "table5": online_table5.TABLE,
}
#: Fewer arms than this and a rank correlation is read with a caution.
FEW_ARMS: Final = 10
ARM_HEADER = ("Table", "Arm", "Offline metric", "Offline", "Coverage", "Saves lift", "Adopted lift")
#: The correlation table's columns, in `correlation_rows`' order.
RHO_HEADER = (
    "Arms of",
    "n",
    *(f"{x} vs {y}" for x in ("HR", "coverage") for y in ("saves", "adopted")),
)


class ArmPoint(NamedTuple):
    """One treatment arm: its offline metric and coverage, and its online lifts."""

    table: str
    arm: str
    run: str
    metric: str
    offline: float | None
    coverage: float | None
    saves: Comparison
    adopted: Comparison


def all_runs(tables: Mapping[str, OnlineTable]) -> dict[str, Overrides]:
    """The runs of every table, once each; a label two tables train differently is an error."""
    runs: dict[str, Overrides] = {}
    for name, table in tables.items():
        for label, overrides in table.runs.items():
            if label in runs and runs[label] != overrides:
                raise ValueError(f"{name}: run {label!r} differs from another table's")
            runs[label] = overrides
    return runs


def arm_points(
    name: str, table: OnlineTable, results: Mapping[str, RunResult], lifts: Path
) -> list[ArmPoint]:
    """The treatment arms of `table` (simulated, its ``lifts.json`` at `lifts`) as points."""
    by = {(r.arm, r.metric): r for r in load_comparisons(lifts) if r.segment == "all"}
    points = []
    for arm, (label, metric) in table.offline.items():
        metrics = results[label].report["segments"]["all"]["metrics"]
        points.append(
            ArmPoint(
                name,
                arm,
                label,
                metric,
                metrics.get(metric),
                metrics.get("coverage_round_robin"),
                by[arm, "saves"],
                by[arm, "adopted"],
            )
        )
    return points


def correlation_rows(points: Sequence[ArmPoint]) -> list[list[str]]:
    """Spearman's rho of offline vs online, per table and over all arms, with n."""
    groups: dict[str, list[ArmPoint]] = {}
    for p in points:
        groups.setdefault(p.table, []).append(p)
    groups["all tables"] = list(points)
    rows = []
    for name, group in groups.items():
        cells = [name, str(len(group))]
        for x in ("offline", "coverage"):
            for online in ("saves", "adopted"):
                both = [(getattr(p, x), getattr(p, online).lift.lift) for p in group]
                pairs = np.array([q for q in both if None not in q], dtype=np.float64).reshape(
                    -1, 2
                )
                rho = spearman(pairs[:, 0], pairs[:, 1])
                cells.append("n/a" if rho is None else f"{rho:+.2f} (n={pairs.shape[0]})")
        rows.append(cells)
    return rows


def render(points: Sequence[ArmPoint], *, data_dir: Path, folders: Sequence[str]) -> str:
    """The agreement report's Markdown."""
    arm_rows = [
        [
            p.table,
            p.arm,
            f"{p.run} {p.metric}",
            "n/a" if p.offline is None else f"{p.offline:.4f}",
            "n/a" if p.coverage is None else f"{p.coverage:.4f}",
            fmt_lift(p.saves),
            fmt_lift(p.adopted),
        ]
        for p in points
    ]
    smallest = min((len([q for q in points if q.table == p.table]) for p in points), default=0)
    return "\n".join(
        [
            f"# {TITLE}",
            "",
            f"World `{data_dir}`. Each table's simulation is in its folder "
            f"({', '.join(f'`{t}/report.md`' for t in folders)}). An arm's offline metric is "
            "that of the run it adds to its control; lifts are over all users with 95% "
            "bootstrap intervals (`*`: significant).",
            "",
            markdown_table(ARM_HEADER, arm_rows),
            "",
            "## Rank correlation (Spearman) between offline and online",
            "",
            markdown_table(RHO_HEADER, correlation_rows(points)),
            "",
            f"Caution: with fewer than {FEW_ARMS} arms a rank correlation is weak evidence "
            f"(here as few as {smallest} per table; with 5 arms only rho = ±1 is significant "
            "at 5%, with 4 or fewer not even that), and n/a means fewer than 2 arms or a "
            "constant side. The pooled row mixes controls (legacy, legacy + CR, single) and "
            "offline protocols (filtered HR for CR, HR for implicit models).",
            "",
        ]
    )


def run(
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool = True,
    workers: int = 1,
    simulation: SimulationConfig | None = None,
) -> Path:
    """Train the runs of Tables 3-5 (first seed), simulate each table, write the agreement.

    Arguments as `multiembed.experiments._online.run_table`'s; the tables' reports go to
    ``out_dir/table3`` etc., the agreement to ``out_dir/report.md``.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    results = train_runs(
        all_runs(TABLES),
        data_dir,
        out_dir,
        config=config,
        seeds=seeds,
        progress=progress,
        workers=workers,
    )
    sim = simulation if simulation is not None else SimulationConfig(seed=seeds[0])
    points: list[ArmPoint] = []
    for name, table in TABLES.items():
        simulate_table(
            table,
            results,
            data_dir,
            out_dir / name,
            config=config,
            simulation=sim,
            progress=progress,
        )
        points += arm_points(name, table, results, out_dir / name / LIFTS_FILE)
    path = out_dir / REPORT_FILE
    path.write_text(render(points, data_dir=data_dir, folders=list(TABLES)), encoding="utf-8")
    return path
