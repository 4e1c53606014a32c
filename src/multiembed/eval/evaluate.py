"""Offline evaluation of a model on a prepared data directory, written as ``RUN/eval.json``.

`evaluate_model` takes models in memory; `evaluate` loads a run directory
(`multiembed.runs.load_run`), calls it and writes the JSON. What is measured
(see `multiembed.eval.metrics` for each definition):

- the paper's protocol (Section 4.1.1): HR@K over a corpus of the most-engaged
  items, max over the user's embeddings, positives outside the corpus included;
- for a Conditional Retrieval model (Table 2): HR of the embedding conditioned on
  the record's logged ``source_topic``, unfiltered and after the relevance
  post-filter (records without a logged topic are left out and counted);
- the served list (Sections 3.5, 4.4): the candidates the retrieval plan returns
  at ``budget`` from an exact index of the same corpus (budgets by importance,
  K_ex sampled followed topics with equal budgets, post-filter unless
  ``eval.relevance_filter`` is off, lists searched deeper where deduplication
  leaves them short), merged round-robin or by global top-k: HR, interest
  coverage, topic diversity, and implicit/explicit overlap. The served list
  holds corpus items only, so a positive outside the corpus is always a served
  miss;
- the ComiRec protocol: Recall, HitRate and NDCG at 20 and 50 from the full item set;
- every number for all users and per segment (core, non-core, new).

Record metrics average over records, user metrics over users (one request per
user: its first record, which has the history the user had when evaluation began).

The report (``eval.json``)::

    format_version, protocol ("time" | "comirec"), ties, eval_config {...},
    model_version, run_dir                       (added by `evaluate`)
    models     {implicit: bool, explicit: bool}
    corpus     {size, requested, positives_in_corpus}
    plan       {budget, k_ex, floor, overfetch, implicit_share, topic_seed, relevance_filter}
    records    {available, evaluated}
    segments   {all | core | non_core | new: {
                   n_records, n_users, n_<metric>_records / n_<metric>_users (where a
                   metric is defined for fewer units),
                   metrics {name: float | null (no unit of the segment defines it)}}}
    seconds

Metric names: ``hr@K`` (implicit); ``explicit_hr@K``, ``filtered_hr@K``
(explicit); ``recall@N``, ``hit_rate@N``, ``ndcg@N`` for N in 20, 50 (implicit);
``served_hr_<s>``, ``candidates_<s>`` (mean served list length),
``coverage_<s>``, ``diversity_<s>`` (mean distinct topics) for ``<s>`` in
``round_robin``, ``global_topk``; ``overlap`` (implicit and explicit together).
Everything is in [0, 1] except ``candidates_*`` and ``diversity_*``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from multiembed.config import EvalConfig, ExamplesConfig, SplitConfig
from multiembed.eval._lists import interest_cosine
from multiembed.eval._progress import Stages
from multiembed.eval._ranking import ranking_metrics
from multiembed.eval._records import EvalData, corpus_position, load_eval_data
from multiembed.eval._report import (
    FORMAT_VERSION,
    Collected,
    build_report,
    summarize_seeds,
    write_report,
)
from multiembed.eval._scores import TieRule, filtered_positive_ranks, positive_ranks, top_n
from multiembed.eval._serving import ExplicitRun, ImplicitRun, served_lists
from multiembed.eval.errors import MetricInputError
from multiembed.retrieve import PlanSettings
from multiembed.runs import (
    ConditionalModel,
    UserItemModel,
    embed_conditioned,
    embed_items,
    embed_users,
    inference,
    load_run,
)

__all__ = [
    "COMIREC_CUTOFFS",
    "EVAL_FILE",
    "FORMAT_VERSION",
    "ConditionalModel",
    "UserItemModel",
    "evaluate",
    "evaluate_model",
    "summarize_seeds",
    "write_report",
]

EVAL_FILE = "eval.json"
COMIREC_CUTOFFS = (20, 50)


def evaluate_model(
    model: UserItemModel | None,
    data_dir: str | os.PathLike[str],
    *,
    split: SplitConfig,
    examples: ExamplesConfig,
    config: EvalConfig,
    explicit: ConditionalModel | None = None,
    followed: bool = False,
    ties: TieRule = "pessimistic",
    batch_size: int = 256,
    progress: bool = True,
    standin: bool = False,
) -> dict[str, Any]:
    """Evaluate an implicit model, a conditional (explicit) model, or both together.

    Args:
        model: the implicit-interest model (e.g. a `RetrievalModel`), or None.
        data_dir: the prepared data directory the models were trained on.
        split: how the data is split (the run's `SplitConfig`).
        examples: history length and followed-topic slots (the run's `ExamplesConfig`).
        config: corpus size, cut-offs, budget, K_ex, importance floor, segments.
        explicit: a `ConditionalModel`, or None.
        followed: feed followed topics to ``model.embed_users`` (models built with
            ``followed_topics``).
        ties: how tied scores count in ranks (see `positive_ranks`).
        batch_size: records embedded and scored at a time.
        progress: show a progress display.
        standin: without a conditional model, serve the sampled followed topics too,
            with the service's stand-in queries (`multiembed.retrieve.explicit_standin`),
            so that the served lists are those the service returns for an implicit run.

    Returns:
        The report: the structure of ``eval.json`` (see the module docstring).

    Raises:
        MetricInputError: neither model given. InputFileError, DataError: unusable data.
    """
    if model is None and explicit is None:
        raise MetricInputError("evaluate_model", "model, explicit", "at least one model", "None")
    started = time.perf_counter()
    data = load_eval_data(Path(data_dir), split=split, examples=examples, config=config)
    rec = data.records
    out = Collected(len(rec), rec.users.size)
    settings = PlanSettings(
        total=config.budget,
        k_ex=config.k_ex,
        floor=config.importance_floor,
        relevance_filter=config.relevance_filter,
    )
    with inference(model, explicit), Stages(enabled=progress) as stages:
        im = (
            None
            if model is None
            else _implicit(model, data, out, followed, ties, batch_size, stages)
        )
        ex = None if explicit is None else _explicit(explicit, data, out, ties, batch_size, stages)
        served_lists(
            data, settings, out, stages, batch_size, implicit=im, explicit=ex, standin=standin
        )
    report = build_report(data, config, settings, out, ties)
    report["models"] = {"implicit": model is not None, "explicit": explicit is not None}
    if im is not None:
        report["interests"] = interest_spread(
            im.users.embeddings[rec.first], im.users.slot_mask[rec.first]
        )
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


def interest_spread(embeddings: np.ndarray, slot_mask: np.ndarray) -> dict[str, float | None]:
    """How many embeddings users get and how alike they are (the collapse figure).

    Args:
        embeddings: ``[U, K, D]`` each user's embeddings (its evaluation request).
        slot_mask: ``[U, K]`` bool, the used slots.

    Returns:
        ``{"per_user": mean used slots, "cosine": mean over users with two or more of
        the mean pairwise cosine of their embeddings (None when no user has two)}``.
        A cosine near 1 means the interests collapsed into one direction.

    >>> e = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    >>> interest_spread(e, np.array([[True, True], [True, False]]))
    {'per_user': 1.5, 'cosine': 0.0}
    """
    cosine = interest_cosine(embeddings, slot_mask)  # [U], NaN below two slots
    spread = cosine[~np.isnan(cosine)]
    return {
        "per_user": float(slot_mask.sum(axis=1).mean()) if slot_mask.size else 0.0,
        "cosine": float(spread.mean()) if spread.size else None,
    }


def _implicit(
    model: UserItemModel,
    data: EvalData,
    out: Collected,
    followed: bool,
    ties: TieRule,
    batch_size: int,
    stages: Stages,
) -> ImplicitRun:
    rec = data.records
    ids = np.arange(data.n_items)
    step = stages.stage("embedding items", -(-ids.size // 1024))
    items = embed_items(model, ids, batch_size=1024, step=step)
    step = stages.stage("embedding users", -(-len(rec) // batch_size))
    users = embed_users(
        model,
        rec.history,
        rec.history_valid,
        rec.followed if followed else None,
        batch_size=batch_size,
        step=step,
    )
    stages.stage("ranking positives", 1)
    out.ranks["hr"] = positive_ranks(
        users.embeddings,
        items[data.corpus],
        items[rec.target],
        query_mask=users.slot_mask,
        positive_index=corpus_position(data.corpus, rec.target),
        ties=ties,
    )
    stages.stage("ComiRec top-N", 1)
    first = rec.first
    top = top_n(
        users.embeddings[first], items, max(COMIREC_CUTOFFS), query_mask=users.slot_mask[first]
    )
    targets = rec.user_items()
    for n in COMIREC_CUTOFFS:
        for name, values in ranking_metrics(top.positions, targets, n)._asdict().items():
            out.user[f"{name}@{n}"] = values  # recall, hit_rate, ndcg
    return ImplicitRun(items, users)


def _explicit(
    model: ConditionalModel,
    data: EvalData,
    out: Collected,
    ties: TieRule,
    batch_size: int,
    stages: Stages,
) -> ExplicitRun:
    rec = data.records
    step = stages.stage("embedding items (explicit)", -(-data.n_items // 1024))
    items = embed_items(model, np.arange(data.n_items), batch_size=1024, step=step)
    rows = np.flatnonzero(rec.source_topic >= 0)
    stages.stage("ranking positives (explicit)", 1)
    for name in ("explicit_hr", "filtered_hr"):
        out.ranks[name] = np.full(len(rec), np.nan)
    if rows.size == 0:
        return ExplicitRun(model, items)
    cond = embed_conditioned(
        model,
        rec.history[rows],
        rec.history_valid[rows],
        rec.source_topic[rows],
        batch_size=batch_size,
    )
    corpus, target = items[data.corpus], items[rec.target[rows]]
    where = corpus_position(data.corpus, rec.target[rows])
    out.ranks["explicit_hr"][rows] = positive_ranks(
        cond, corpus, target, positive_index=where, ties=ties
    )
    out.ranks["filtered_hr"][rows] = filtered_positive_ranks(
        cond,
        corpus,
        target,
        corpus_topics=data.item_topics[data.corpus],
        condition=rec.source_topic[rows],
        positive_topics=data.item_topics[rec.target[rows]],
        positive_index=where,
        ties=ties,
    )
    return ExplicitRun(model, items)


def evaluate(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    config: EvalConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained run on `data_dir` and write ``run_dir/eval.json``.

    Loads the run with `multiembed.runs.load_run` (checksums verified), takes
    the split, examples and (unless `config` is given) evaluation settings from
    the run's config, and calls `evaluate_model`: the model is evaluated as an
    implicit model when it embeds users (`UserItemModel`) and as an explicit one
    when it embeds users under a condition (`ConditionalModel`).

    Returns:
        The report that was written, with ``model_version`` and ``run_dir`` added.
    """
    run = load_run(Path(run_dir), data_dir=Path(data_dir))
    cfg = run.config
    model = run.model
    report = evaluate_model(
        model if isinstance(model, UserItemModel) else None,
        data_dir,
        split=cfg.split,
        examples=cfg.examples,
        config=config if config is not None else cfg.eval,
        explicit=model if isinstance(model, ConditionalModel) else None,
        followed=bool(cfg.model.followed_topics),
        progress=progress,
    )
    report = {"model_version": run.model_version, "run_dir": str(run_dir), **report}
    write_report(report, Path(run_dir) / EVAL_FILE)
    return report
