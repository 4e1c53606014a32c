"""Running a simulated A/B test end to end and writing its report.

`run_simulation` reads the population, builds the arms, simulates, compares
every arm with the first (the control) and writes into the output folder:

- ``engagements.parquet``: every engagement (arm, user, day, session, position,
  item, action, source kind, source topic);
- ``lifts.json``: every comparison (arm, metric, segment, users, means, lift,
  interval, significance) and the settings;
- ``report.md``: the paper-style table (HF Repins, A-Pincepts, all users and
  non-core, core, and each non-core cohort) with intervals.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from multiembed.errors import ConfigError
from multiembed.retrieve import PlanSettings, round_robin_merge
from multiembed.simulate._arm import KINDS, Arm
from multiembed.simulate._config import SimulationConfig
from multiembed.simulate._loop import SimLog, simulate
from multiembed.simulate._metrics import (
    METRICS,
    SEGMENTS,
    Comparison,
    Lift,
    compare,
    user_metrics,
)
from multiembed.simulate._population import COHORTS, Population, load_population
from multiembed.simulate._runs import build_arm

REPORT_FILE = "report.md"
LIFTS_FILE = "lifts.json"
LOG_FILE = "engagements.parquet"
SEGMENT_LABELS = {segment: segment.replace("_", "-") for segment in SEGMENTS}


def run_simulation(
    data_dir: Path,
    arms: Mapping[str, Sequence[str]],
    out_dir: Path,
    *,
    config: SimulationConfig,
    plan: PlanSettings,
    title: str = "Simulated A/B test",
    progress: bool = False,
) -> Path:
    """Simulate `arms` (name -> parts, the first is the control) on the world in `data_dir`.

    Returns:
        The path of ``out_dir/report.md``.

    Raises:
        ConfigError: fewer than two arms, or an arm that cannot be built.
    """
    if len(arms) < 2:
        raise ConfigError([f"arms: expected a control and at least one treatment, got {len(arms)}"])
    started = time.perf_counter()
    population = load_population(Path(data_dir), config)
    build = partial(
        build_arm, data_dir=Path(data_dir), population=population, plan=plan, seed=config.seed
    )
    built = [build(name, tuple(parts)) for name, parts in arms.items()]
    say = _printer(progress)
    log = simulate(population, built, config, on_day=lambda d: say(f"day {d + 1}/{config.days}"))
    values = user_metrics(log, population.item_subtopic, population.n_users, config)
    rows = compare(values, population.cohort, config, control=built[0].name)
    wall = time.perf_counter() - started
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_log(log, out_dir / LOG_FILE)
    meta = {
        "data_dir": str(data_dir),
        "arms": {name: list(parts) for name, parts in arms.items()},
        "control": built[0].name,
        "users": population.n_users,
        "cohorts": {c: int((population.cohort == i).sum()) for i, c in enumerate(COHORTS)},
        "config": dataclasses.asdict(config),
        "plan": dataclasses.asdict(plan),
        "engagements": len(log),
        "wall_s": round(wall, 1),
    }
    comparisons = [{**r._asdict(), **r.lift._asdict()} for r in rows]  # the lift spread out
    (out_dir / LIFTS_FILE).write_text(
        json.dumps({**meta, "comparisons": comparisons}, indent=2) + "\n"
    )
    path = out_dir / REPORT_FILE
    path.write_text(render(rows, built, population, log, meta, title=title), encoding="utf-8")
    return path


def _printer(progress: bool) -> Callable[[str], None]:
    if not progress:
        return lambda text: None
    from rich.console import Console

    console = Console(highlight=False, markup=False)
    return lambda text: console.print(f"== {text}")


def load_comparisons(path: Path) -> list[Comparison]:
    """The comparisons of a ``lifts.json`` written by `run_simulation`."""
    rows = json.loads(Path(path).read_text())["comparisons"]
    return [
        Comparison(
            **{name: r[name] for name in Comparison._fields[:-1]},
            lift=Lift(**{name: r[name] for name in Lift._fields}),
        )
        for r in rows
    ]


def write_log(log: SimLog, path: Path) -> None:
    """The engagement log as Parquet, arm and kind by name."""
    table = pa.table(
        {
            "arm": pa.array([log.arms[a] for a in log.arm.tolist()], pa.string()),
            "user_id": pa.array(log.user),
            "day": pa.array(log.day.astype("int32")),
            "session": pa.array(log.session.astype("int32")),
            "position": pa.array(log.position.astype("int32")),
            "item_id": pa.array(log.item),
            "action": pa.array(["save" if s else "click" for s in log.save.tolist()], pa.string()),
            "source": pa.array([KINDS[k] for k in log.kind.tolist()], pa.string()),
            "source_topic": pa.array(log.source_topic, mask=log.source_topic < 0),
        }
    )
    pq.write_table(table, path)


def fmt_lift(r: Comparison) -> str:
    """``+1.23% [+0.40%, +2.10%]*`` (``*``: significant), ``n/a`` without a control total."""
    lift = r.lift
    if lift.lift is None:
        return "n/a"
    text = f"{100 * lift.lift:+.2f}%"
    if lift.low is not None and lift.high is not None:
        text += f" [{100 * lift.low:+.2f}%, {100 * lift.high:+.2f}%]"
    return text + ("*" if lift.significant else "")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table.

    >>> print(markdown_table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def render(
    rows: Sequence[Comparison],
    arms: Sequence[Arm],
    population: Population,
    log: SimLog,
    meta: Mapping[str, Any],
    *,
    title: str,
) -> str:
    """The report's Markdown."""
    cfg = meta["config"]
    plan = meta["plan"]
    by = {(r.arm, r.metric, r.segment): r for r in rows}
    treatments = [a.name for a in arms[1:]]
    lines = [
        f"# {title}",
        "",
        f"World `{meta['data_dir']}`: {population.n_users:,} users, each simulated in every arm "
        f"with the same sessions and coins (paired), {cfg['days']} days, {cfg['shown']} items "
        f"shown per session by one ranking stage shared by all arms (true interest + noise "
        f"{cfg['ranker_noise']}), plan budget {plan['total']}, K_ex {plan['k_ex']}. "
        f"Lifts against `{arms[0].name}` with {100 * cfg['confidence']:.0f}% bootstrap intervals "
        f"over users ({cfg['bootstrap']} resamples); `*` marks a significant lift. "
        f"Wall time {meta['wall_s']} s.",
        "",
        "Arms: "
        + "; ".join(
            f"`{a.name}` = {' + '.join(s.name for s in a.sources)}"
            + ("" if a.settings.relevance_filter else " (no relevance filter)")
            + ("" if a.merge is round_robin_merge else " (global top-k merge)")
            for a in arms
        )
        + ".",
        "",
    ]
    main = []
    for metric, label in METRICS.items():
        for segment in ("all", "non_core", "core"):
            name = label if segment == "all" else f"{label}, {SEGMENT_LABELS[segment]}"
            main.append([name, *(fmt_lift(by[t, metric, segment]) for t in treatments)])
    lines += [markdown_table(["Metric", *treatments], main), ""]
    cohort_rows = []
    for segment in SEGMENTS:
        for metric in METRICS:
            rs = [by[t, metric, segment] for t in treatments]
            row = [SEGMENT_LABELS[segment], metric, f"{rs[0].users:,}", f"{rs[0].control_mean:.3f}"]
            cohort_rows.append(row + [f"{r.arm_mean:.3f} ({fmt_lift(r)})" for r in rs])
    lines += [
        "## By segment and cohort",
        "",
        "Per user means (lift). Core: more than "
        f"{cfg['core_saves']} saves in the {cfg['core_days']} days before the test; the "
        "non-core cohorts of the paper's Table 7: new (signed up on the log's last day), "
        "resurrected (engaged before, not in the last 7 days), casual (2 or more active "
        "days), marginal (at most one).",
        "",
        markdown_table(["Segment", "Metric", "Users", f"{arms[0].name}", *treatments], cohort_rows),
        "",
    ]
    explicit = log.source_topic >= 0
    shares = []
    for a, name in enumerate(log.arms):
        mine = log.arm == a
        n = int(mine.sum())
        counts = (n, int(log.save[mine].sum()), int(log.impressions[a].sum()))
        share = f"{100 * (explicit & mine).sum() / max(n, 1):.1f}%"
        shares.append([name, *(f"{c:,}" for c in counts), share])
    lines += [
        "## Engagements",
        "",
        markdown_table(
            ["Arm", "Engagements", "Saves", "Impressions", "From explicit lists"], shares
        ),
        "",
    ]
    return "\n".join(lines)
