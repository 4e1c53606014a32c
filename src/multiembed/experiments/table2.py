"""Table 2 of the paper: Conditional Retrieval with item-interest vs. source-interest association.

For every seed, two explicit runs (``model.kind = "explicit"``) are trained on the
same data, one per association (`ItemInterest`, the Lin et al. baseline, and
`SourceInterest`, the paper's), and evaluated with `multiembed.eval.evaluate`: each
evaluation record's embedding is conditioned on the topic *logged* with it (Table 2's
protocol), and HR@K is measured unfiltered and after the relevance post-filter
(Section 3.3.3). One implicit run (``model.name`` of the config, DCM by default) of
the first seed is evaluated together with the source-interest run of that seed, to
measure the overlap of the explicit and implicit candidates of the same users (the
paper reports 3.2%).

Written to ``out_dir``: ``runs/<name>-seed<s>/`` (each with its ``eval.json``),
``overlap.json`` and ``table2.md``: mean ± std over seeds of filtered HR@100,
filtered HR@1000 and HR@100 per association, the same by user segment (core,
non-core, new), the overlap, and the training examples without a condition.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from multiembed.config import Config
from multiembed.eval.evaluate import evaluate, evaluate_model, summarize_seeds, write_report
from multiembed.experiments._runs import seeded, with_overrides
from multiembed.runs import MANIFEST_FILE, load_run
from multiembed.simulate import markdown_table as table
from multiembed.train import train

#: run label -> (condition, training engagements, row label). Item interest runs twice:
#: on every engagement (Lin et al.'s bootstrap) and on the logged ones only, so that
#: the comparison with source interest isolates the association.
VARIANTS: dict[str, tuple[Literal["source", "item"], Literal["all", "logged"], str]] = {
    "item": ("item", "all", "CR w/ item interest (all engagements)"),
    "item_logged": ("item", "logged", "CR w/ item interest (logged engagements)"),
    "source": ("source", "logged", "CR w/ source interest"),
}
ASSOCIATIONS: dict[str, str] = {name: label for name, (_, _, label) in VARIANTS.items()}
METRICS: dict[str, str] = {
    "filtered_hr@100": "Filtered HR@100",
    "filtered_hr@1000": "Filtered HR@1000",
    "explicit_hr@100": "HR@100",
}
SEGMENTS: dict[str, str] = {"core": "core", "non_core": "non-core", "new": "new"}
TRAINING_HEADER = ["Association", "Seed", "Steps", "Examples", "Without condition (not trained on)"]
TRAINING_HEADER += ["Skipped batches", "Final loss"]
REPORT_FILE = "table2.md"
OVERLAP_FILE = "overlap.json"


def run(
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Train, evaluate and write ``out_dir/table2.md``; returns its path.

    Args:
        data_dir: a prepared data directory (with logged source topics and item topics).
        out_dir: where runs, evaluations and the report go.
        config: the base configuration; ``model.kind``/``condition`` and the seeds
            (``model.seed``, ``train.seed``) are set per run, and ``eval.ks`` gains 100
            and 1000.
        seeds: training seeds (at least one).
        progress: show training and evaluation progress.
        workers: accepted for the common signature; the runs go one after the other.
    """
    if not seeds:
        raise ValueError("table2.run: expected at least one seed, got none")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    eval_config = dataclasses.replace(config.eval, ks=tuple(sorted({*config.eval.ks, 100, 1000})))
    reports: dict[str, list[dict[str, Any]]] = {a: [] for a in ASSOCIATIONS}
    manifests: dict[str, list[dict[str, Any]]] = {a: [] for a in ASSOCIATIONS}
    for seed in seeds:
        for association, (condition, examples, _) in VARIANTS.items():
            cfg = _variant(
                config, seed, kind="explicit", condition=condition, condition_examples=examples
            )
            run_dir = out_dir / "runs" / f"cr_{association}-seed{seed}"
            train(cfg, data_dir, run_dir, progress=progress, resume=False)
            reports[association].append(
                evaluate(run_dir, data_dir, config=eval_config, progress=progress)
            )
            manifests[association].append(json.loads((run_dir / MANIFEST_FILE).read_text()))

    implicit_cfg = _variant(
        config, seeds[0], kind="implicit", condition="source", condition_examples="all"
    )
    implicit_dir = out_dir / "runs" / f"{implicit_cfg.model.name}-seed{seeds[0]}"
    train(implicit_cfg, data_dir, implicit_dir, progress=progress, resume=False)
    implicit = load_run(implicit_dir, data_dir=data_dir)
    explicit = load_run(out_dir / "runs" / f"cr_source-seed{seeds[0]}", data_dir=data_dir)
    overlap = evaluate_model(
        implicit.model,  # type: ignore[arg-type]  # an implicit run: a RetrievalModel
        data_dir,
        split=implicit_cfg.split,
        examples=implicit_cfg.examples,
        config=eval_config,
        explicit=explicit.model,  # type: ignore[arg-type]  # a ConditionalRetrievalModel
        followed=implicit_cfg.model.followed_topics,
        progress=progress,
    )
    write_report(overlap, out_dir / OVERLAP_FILE)

    model = implicit_cfg.model.name
    text = render(reports, manifests, overlap, data_dir=data_dir, seeds=seeds, model=model)
    path = out_dir / REPORT_FILE
    path.write_text(text, encoding="utf-8")
    return path


def _variant(config: Config, seed: int, **model: str) -> Config:
    """`config` with the `model` settings, both generators seeded with `seed`."""
    return seeded(with_overrides(config, {"model": model}), seed)


def _fmt(stat: Mapping[str, Any] | None, *, percent: bool = False) -> str:
    if stat is None:
        return "n/a"
    scale, spec, unit = (100.0, ".2f", "%") if percent else (1.0, ".4f", "")
    text = f"{stat['mean'] * scale:{spec}}{unit}"
    if stat.get("n", 1) > 1:
        text += f" ± {stat['std'] * scale:{spec}}{unit}"
    return text


def render(
    reports: Mapping[str, Sequence[Mapping[str, Any]]],
    manifests: Mapping[str, Sequence[Mapping[str, Any]]],
    overlap: Mapping[str, Any],
    *,
    data_dir: Path,
    seeds: Sequence[int],
    model: str,
) -> str:
    """The Markdown of Table 2 from the evaluation reports of each association."""
    summary = {a: summarize_seeds(list(r)) for a, r in reports.items()}
    first = next(iter(reports.values()))[0]
    n_seeds = len(seeds)
    out = [
        "# Table 2: Conditional Retrieval, item-interest vs. source-interest association",
        "",
        f"Data: `{data_dir}` · protocol `{first['protocol']}` · seeds {list(seeds)} "
        f"(mean ± std over {n_seeds}) · corpus {first['corpus']['size']:,} items · "
        f"{first['records']['evaluated']:,} evaluation records. Each record's embedding is "
        "conditioned on the topic logged with it (records without one are left out); "
        "*filtered* keeps only corpus items carrying that topic (Section 3.3.3).",
        "",
        table(
            ["Association", *METRICS.values()],
            [
                [label, *(_fmt(summary[a]["all"].get(m)) for m in METRICS)]
                for a, label in ASSOCIATIONS.items()
            ],
        ),
        "",
    ]
    item, source = summary["item_logged"]["all"], summary["source"]["all"]
    lifts = []
    for m, label in METRICS.items():
        if m in item and m in source and item[m]["mean"] > 0:
            lifts.append(f"{label} {100 * (source[m]['mean'] / item[m]['mean'] - 1):+.1f}%")
    if lifts:
        out += [
            f"Source vs. item interest on the same engagements (relative): {', '.join(lifts)}.",
            "",
        ]

    rows = []
    for seg, seg_label in SEGMENTS.items():
        segment = first["segments"].get(seg, {})
        records = segment.get("n_explicit_hr_records")
        records = segment.get("n_records", 0) if records is None else records
        for a, label in ASSOCIATIONS.items():
            stats = summary[a].get(seg, {})
            rows.append([seg_label, label, f"{records:,}", *(_fmt(stats.get(m)) for m in METRICS)])
    out += [
        "## By user segment",
        "",
        "Core: more than 4 positive engagements in the 28 days before evaluation; new: no "
        "engagement before it; non-core: the rest.",
        "",
        table(["Segment", "Association", "Records", *METRICS.values()], rows),
        "",
    ]

    overlap_rows = []
    for seg, seg_label in {"all": "all", **SEGMENTS}.items():
        stats = overlap["segments"].get(seg, {})
        share = stats.get("metrics", {}).get("overlap")
        cell = _fmt(None if share is None else {"mean": share, "n": 1}, percent=True)
        overlap_rows.append([seg_label, f"{stats.get('n_overlap_users', 0):,}", cell])
    out += [
        "## Explicit / implicit candidate overlap",
        "",
        f"Served lists (round-robin, budget {overlap['plan']['budget']}, K_ex = "
        f"{overlap['plan']['k_ex']}) of the implicit `{model}` run and the source-interest "
        f"CR run of seed {seeds[0]}: the share of candidates from explicit embeddings that "
        "implicit embeddings also retrieved, per user with both (paper: 3.2%).",
        "",
        table(["Segment", "Users", "Overlap"], overlap_rows),
        "",
    ]

    train_rows = []
    for a, label in ASSOCIATIONS.items():
        for seed, manifest in zip(seeds, manifests[a], strict=True):
            t = manifest["training"]
            without = int(t.get("examples_without_condition", 0))
            share = without / t["examples"] if t["examples"] else 0.0
            loss = "n/a" if t["final_loss"] is None else f"{t['final_loss']:.4f}"
            counts = [f"{t['steps']:,}", f"{t['examples']:,}", f"{without:,} ({100 * share:.1f}%)"]
            counts.append(f"{t.get('skipped_batches', 0):,}")
            train_rows.append([label, str(seed), *counts, loss])
    out += ["## Training", "", table(TRAINING_HEADER, train_rows), ""]
    return "\n".join(out)
