"""Benchmark: settings x public splits x seeds through the new user's path, as one table.

Runs a split runner (the outside benchmark's ``run.sh SPLIT [CONFIG] [WORKDIR]``:
lay the split out as files, ``multiembed prepare``, ``train``, ``export --users``,
score under the ComiRec protocol) once per setting, split and seed, several at a
time, and tabulates Recall@50 mean ± std over seeds with the mean interest cosine:
the table the README's "Defaults on public logs" section shows.

A setting is a name and dotted overrides of the defaults (``defaults`` has none);
each seed sets ``[model] seed`` and ``[train] seed``. Results are appended to
``OUT/results.jsonl`` as each run ends, and runs already there are skipped, so an
interrupted sweep resumes where it stopped. ``OUT/table.md`` is rewritten after
every run.

    python bench/public_splits.py --runner ../shared/benchmark/run.sh --out /tmp/sweep \\
        --setting defaults --setting lr=train.lr=0.001 \\
        --setting single=model.name=single,train.lr=0.001 --seeds 0,1,2 --workers 2

``--baseline NAME`` adds a second table: each other setting's Recall@50 minus the
baseline's, seed by seed (a split's seeds share its test users, so the paired
difference is steadier than the two means), with the seeds ahead, level and behind.

``--valid`` also scores each run on the split's validation users (as many as its
test users, held out of training like them): their histories are exported from
the same run (``multiembed export --users``) and scored by the benchmark's own
``score.py score --which valid``. ``--score`` then picks what the tables show:
``test`` (the runner's figure), ``valid``, or ``pooled``, the mean over both sets'
users, which halves the variance a split's few test users leave in a comparison.

``MULTIEMBED`` in the environment names the CLI the runner and ``--valid`` call (for
instance a frozen checkout's, so edits made while a sweep runs do not leak into it);
``BENCH_VENV``, the evaluator's environment the runner made.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SPLITS = (
    "ml-latest-small",
    "taobao-userbehavior-head",
    "hetrec2011-lastfm-2k",
    "ml-100k",
    "s3rec-Yelp",
)
"""The outside benchmark's five shared splits, smallest first but Yelp last."""


def parse_setting(text: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """``NAME[=section.key=value,...]`` as the name and its overrides by section.

    Values are read as TOML values, and bare words as strings.

    >>> parse_setting("lr=train.lr=0.001,model.name=single")
    ('lr', {'train': {'lr': 0.001}, 'model': {'name': 'single'}})
    >>> parse_setting("defaults")
    ('defaults', {})
    """
    name, _, rest = text.partition("=")
    overrides: dict[str, dict[str, Any]] = {}
    for item in filter(None, rest.split(",")):
        key, eq, raw = item.partition("=")
        section, dot, field = key.partition(".")
        if not (eq and dot and section and field):
            raise ValueError(f"setting {text!r}: expected section.key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        overrides.setdefault(section, {})[field] = value
    if not name:
        raise ValueError(f"setting {text!r}: expected a name before '='")
    return name, overrides


def config_text(overrides: dict[str, dict[str, Any]], seed: int) -> str:
    """A TOML config: the overrides plus the seed of the model and of training.

    >>> print(config_text({"train": {"lr": 0.001}}, 2), end="")
    [model]
    seed = 2
    <BLANKLINE>
    [train]
    lr = 0.001
    seed = 2
    """
    sections = {s: dict(v) for s, v in overrides.items()}
    for section in ("model", "train"):
        sections.setdefault(section, {})["seed"] = seed
    blocks = []
    for section in sorted(sections, key=lambda s: (s not in ("model", "train"), s)):
        lines = [f"[{section}]"] + [
            f"{k} = {json.dumps(v)}" for k, v in sorted(sections[section].items())
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def run_one(
    runner: Path, split: str, config: Path, work: Path, *, keep: bool, valid: bool = False
) -> dict[str, Any]:
    """One runner call; its scores (``score.json``), the run's model selection and, with
    `valid`, the same run's scores on the split's validation users (`score_valid`)."""
    start = time.monotonic()
    proc = subprocess.run(
        [str(runner), split, str(config), str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    row: dict[str, Any] = {
        "wall_s": round(time.monotonic() - start, 1),
        "line": proc.stdout.splitlines()[0] if proc.stdout else proc.stderr.strip()[-300:],
    }
    score = work / "score.json"
    if proc.returncode == 0 and score.is_file():
        row["scores"] = json.loads(score.read_text())
        manifest = work / "run" / "manifest.json"
        if manifest.is_file():
            row["selection"] = json.loads(manifest.read_text()).get("training", {}).get("selection")
        if valid:
            row |= score_valid(runner.parent, split, work)
    else:
        row["error"] = f"exit {proc.returncode}"
    if not keep:
        for part in ("data", "source", "export", "export_valid", "run"):
            shutil.rmtree(work / part, ignore_errors=True)
    return row


def score_valid(bench: Path, split: str, work: Path) -> dict[str, Any]:
    """The run in ``work/run`` scored on the validation users of split ``bench/splits/split``.

    Their histories are written as the runner's layout writes the test users'
    (``score.py``: a position, a timestamp below 10^7, becomes minutes after a fixed
    epoch), exported through the CLI and scored by ``score.py score --which valid``.
    Returns ``{"valid_scores": ...}``, or ``{"valid_error": ...}`` naming the step that
    failed (the test scores stand either way).
    """
    split_dir = bench / "splits" / split
    python = Path(os.environ.get("BENCH_VENV", Path(tempfile.gettempdir(), _VENV)), "bin/python")
    histories, export = work / "valid_histories.csv", work / "export_valid"
    with (split_dir / "valid_history.csv").open(newline="") as src, histories.open("w") as dst:
        out = csv.writer(dst)
        out.writerow(["user_id", "item_id", "timestamp"])
        for r in csv.DictReader(src):
            ts = int(r["timestamp"])
            out.writerow([r["user_id"], r["item_id"], ts if ts > 10_000_000 else _EPOCH + 60 * ts])
    run, score = str(work / "run"), str(bench / "score.py")
    steps = (
        ("export", [_cli(), "export", run, "--out", str(export), "--users", str(histories)]),
        ("score", [str(python), score, "score", str(split_dir), str(export), "--which", "valid"]),
    )
    for step, argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return {"valid_error": f"{step}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    try:
        return {"valid_scores": json.loads(proc.stdout.splitlines()[-1])}
    except (IndexError, json.JSONDecodeError):
        return {"valid_error": f"score: no JSON line in {proc.stdout.strip()[-300:]!r}"}


_EPOCH = 1_500_000_000  # score.py's BASE_TS
_VENV = "multiembed-benchmark-venv"  # run.sh's default BENCH_VENV under the temp folder


def _cli() -> str:
    """The CLI the runner calls: ``MULTIEMBED``, else ``.venv/bin/multiembed``, else PATH's."""
    if cli := os.environ.get("MULTIEMBED"):
        return cli
    return ".venv/bin/multiembed" if Path(".venv/bin/multiembed").is_file() else "multiembed"


def recall_of(row: dict[str, Any], which: str) -> float | None:
    """A finished run's Recall@50 on the test users, the validation users, or ``pooled``
    (the mean over both sets' users); None when the run has no such score.

    >>> row = {"scores": {"recall@50": 0.2, "n_users": 30},
    ...        "valid_scores": {"recall@50": 0.4, "n_users": 10}}
    >>> recall_of(row, "test"), round(recall_of(row, "pooled"), 3), recall_of({}, "valid")
    (0.2, 0.25, None)
    """
    test, valid = row.get("scores"), row.get("valid_scores")
    if which == "test":
        return None if test is None else test["recall@50"]
    if which == "valid":
        return None if valid is None else valid["recall@50"]
    if test is None or valid is None:
        return None
    n_t, n_v = test["n_users"], valid["n_users"]
    return (test["recall@50"] * n_t + valid["recall@50"] * n_v) / (n_t + n_v)


def mean_std(values: list[float]) -> str:
    """``mean ± std (n)``; the std is left out for one value.

    >>> mean_std([0.2, 0.3]), mean_std([0.25])
    ('0.250 ± 0.071 (2)', '0.250 (1)')
    """
    mean = statistics.fmean(values)
    spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{mean:.3f}{spread} ({len(values)})"


def table(
    results: list[dict[str, Any]], settings: list[str], splits: list[str], which: str = "test"
) -> str:
    """Markdown: one row per setting, one column per split; Recall@50 (`recall_of`
    `which`) and the test users' interest cosine."""
    head = "| setting | " + " | ".join(splits) + " |\n|---|" + "---|" * len(splits) + "\n"
    rows = []
    for name in settings:
        cells = []
        for split in splits:
            done = [
                (r, value)
                for r in results
                if r["setting"] == name
                and r["split"] == split
                and (value := recall_of(r, which)) is not None
            ]
            if not done:
                cells.append("-")
                continue
            cell = mean_std([value for _, value in done])
            cosines = [c for r, _ in done if (c := r["scores"].get("interest_cosine")) is not None]
            if cosines:
                cell += f" / cos {statistics.fmean(cosines):.2f}"
            cells.append(cell)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def _recalls(results: list[dict[str, Any]], name: str, split: str, which: str) -> dict[int, float]:
    """Seed -> Recall@50 (`recall_of` `which`) of the finished runs of one setting on one
    split."""
    return {
        r["seed"]: value
        for r in results
        if r["setting"] == name
        and r["split"] == split
        and (value := recall_of(r, which)) is not None
    }


def paired_cell(ours: dict[int, float], base: dict[int, float]) -> str:
    """The mean difference over the seeds both ran, then the seeds ahead / level / behind.

    A split's seeds share its test users, so a difference seed by seed is steadier
    than two means whose spread holds the seeds' own.

    >>> paired_cell({0: 0.30, 1: 0.25, 2: 0.20}, {0: 0.28, 1: 0.25, 2: 0.21, 3: 0.5})
    '+0.003 (1 / 1 / 1)'
    >>> paired_cell({0: 0.3}, {1: 0.2})
    '-'
    """
    seeds = sorted(ours.keys() & base.keys())
    if not seeds:
        return "-"
    diffs = [ours[s] - base[s] for s in seeds]
    ahead = sum(d > 0 for d in diffs)
    behind = sum(d < 0 for d in diffs)
    return f"{statistics.fmean(diffs):+.3f} ({ahead} / {len(diffs) - ahead - behind} / {behind})"


def paired_table(
    results: list[dict[str, Any]],
    settings: list[str],
    splits: list[str],
    baseline: str,
    which: str = "test",
) -> str:
    """Markdown: each other setting against ``baseline``, split by split (`paired_cell`)."""
    head = (
        f"Against {baseline}: mean Recall@50 difference over the seeds both ran "
        "(seeds ahead / level / behind)\n\n"
        "| setting | " + " | ".join(splits) + " |\n|---|" + "---|" * len(splits) + "\n"
    )
    rows = [
        f"| {name} | "
        + " | ".join(
            paired_cell(_recalls(results, name, s, which), _recalls(results, baseline, s, which))
            for s in splits
        )
        + " |"
        for name in settings
        if name != baseline
    ]
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runner", type=Path, required=True, help="run.sh of the benchmark")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--setting", action="append", default=[], help="NAME[=sec.key=v,...]")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--keep", action="store_true", help="keep each run's files")
    parser.add_argument(
        "--baseline", help="a setting to compare the others with, seed by seed (paired)"
    )
    parser.add_argument(
        "--valid", action="store_true", help="also score each run on the validation users"
    )
    parser.add_argument(
        "--score",
        choices=("test", "valid", "pooled"),
        default="test",
        help="the Recall@50 the tables show (valid and pooled need --valid runs)",
    )
    args = parser.parse_args(argv)
    settings = dict(parse_setting(s) for s in args.setting or ["defaults"])
    if args.baseline is not None and args.baseline not in settings:
        parser.error(f"--baseline {args.baseline}: not one of the settings {sorted(settings)}")
    splits = [s for s in args.splits.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.jsonl"
    results = (
        [json.loads(line) for line in results_path.read_text().splitlines() if line]
        if results_path.is_file()
        else []
    )
    done = {
        (r["setting"], r["split"], r["seed"])
        for r in results
        if "scores" in r and (not args.valid or "valid_scores" in r)
    }
    wanted = [(name, split, seed) for seed in seeds for split in splits for name in settings]
    jobs = [job for job in wanted if job not in done]
    lock = threading.Lock()

    def tables() -> str:
        text = f"Recall@50 on the {args.score} users\n\n" if args.score != "test" else ""
        text += table(results, list(settings), splits, args.score)
        if args.baseline is not None:
            text += "\n" + paired_table(results, list(settings), splits, args.baseline, args.score)
        return text

    def work(job: tuple[str, str, int]) -> None:
        name, split, seed = job
        config = args.out / "configs" / f"{name}-{seed}.toml"
        config.parent.mkdir(exist_ok=True)
        config.write_text(config_text(settings[name], seed))
        workdir = args.out / "work" / f"{name}-{split}-{seed}"
        row = {"setting": name, "split": split, "seed": seed}
        row |= run_one(
            args.runner.resolve(), split, config, workdir, keep=args.keep, valid=args.valid
        )
        with lock:
            results.append(row)
            with results_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            (args.out / "table.md").write_text(tables())
            print(f"[{len(results)}] {name} seed {seed}: {row['line']}", flush=True)

    print(
        f"{len(jobs)} runs ({len(wanted) - len(jobs)} already done), {args.workers} at a time",
        flush=True,
    )
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(work, jobs))
    (args.out / "table.md").write_text(tables())
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
