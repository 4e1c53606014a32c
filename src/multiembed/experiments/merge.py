"""Section 4.4: how the K embeddings' lists are merged, and how the budget is split.

For MIND and DCM, every evaluation record is served at ``eval.budget`` from an
exact search of the corpus with each used user embedding, four ways:

- budgets by cluster importance (Section 3.5) or equal budgets per embedding;
- merged round-robin with deduplication, or by a global top-k over all lists.

Each list is cut to its budget plus the plan's overfetch and searched deeper
where deduplication leaves it short (`multiembed.retrieve.fill_from_hits`), exactly
as the evaluation's served list (`multiembed.eval.evaluate`), and a user without a
usable slot gets the most popular items, so the two "importance" rows reproduce
``served_hr_round_robin`` and ``served_hr_global_topk`` of ``eval.json`` (both are
in the report; a test pins it). Served HR averages over records; interest coverage and topic
diversity over users (their first record), as in the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from multiembed.config import Config
from multiembed.eval import load_eval_data
from multiembed.eval.metrics import interest_coverage, top_n, topic_diversity
from multiembed.experiments import _report
from multiembed.experiments._runs import announcer, implicit_model, run_jobs, with_overrides
from multiembed.retrieve import (
    Merger,
    PlanSettings,
    deepest,
    equal_budgets,
    fill_from_hits,
    global_topk_merger,
    implicit_budgets,
    round_robin_merge,
)
from multiembed.runs import embed_items, embed_users, inference, load_run

MODELS = ("mind", "dcm")
BudgetRule = Callable[[np.ndarray, int, int], np.ndarray]
"""``(importance [k], total, floor) -> budgets [k]`` of the used slots."""


BUDGETS: dict[str, BudgetRule] = {
    "importance": lambda importance, total, floor: implicit_budgets(importance, total, floor=floor),
    "equal": lambda importance, total, floor: equal_budgets(importance.size, total),
}
MERGES: dict[str, Merger] = {"round-robin": round_robin_merge, "global top-k": global_topk_merger}
VARIANTS = [(b, m) for b in BUDGETS for m in MERGES]
METRICS = {"served_hr": "served HR", "coverage": "coverage", "diversity": "diversity"}


def serve(
    ids: np.ndarray,
    scores: np.ndarray,
    importance: np.ndarray,
    budgets: np.ndarray,
    merge: Merger,
    *,
    total: int,
    overfetch: float,
) -> np.ndarray:
    """One request's served ids from ``[k, depth]`` lists of its used slots (``-1`` pads).

    Slots are taken most important first; each list is cut to ``budget +
    ceil(overfetch * budget)`` (the whole budget when there is one list), then
    searched deeper where the merge runs it dry, as the plan does (`fill_from_hits`).

    >>> ids = np.array([[1, 2, 3], [2, 4, 5]]); s = np.ones((2, 3), np.float32)
    >>> serve(ids, s, np.array([2.0, 1.0]), np.array([2, 2]), round_robin_merge,
    ...       total=4, overfetch=0.0).tolist()  # slot 1 places 2 first: slot 0 goes deeper
    [1, 2, 3, 4]
    """
    order = np.argsort(-importance, kind="stable")
    order = order[budgets[order] > 0]
    return fill_from_hits(
        ids[order],
        scores[order].astype(np.float32),
        budgets[order].astype(np.int64),
        total,
        overfetch=overfetch,
        merge=merge,
    ).candidates.ids


def served_variants(run_dir: Path, data_dir: Path, *, batch_size: int = 256) -> dict[str, dict]:
    """``{"<budgets>, <merge>": {served_hr, coverage, diversity}}`` of one trained run."""
    run = load_run(run_dir, data_dir=data_dir)
    cfg = run.config
    data = load_eval_data(data_dir, split=cfg.split, examples=cfg.examples, config=cfg.eval)
    rec = data.records
    settings = PlanSettings(
        total=cfg.eval.budget, k_ex=cfg.eval.k_ex, floor=cfg.eval.importance_floor
    )
    total = settings.total
    depth = deepest(total, settings.overfetch)  # deep enough for any list of the plan
    corpus_ids = np.sort(data.corpus)
    with inference(run.model):
        items = embed_items(run.model, np.arange(data.n_items), batch_size=1024)[corpus_ids]
        model = implicit_model(run.model, "merge")
        users = embed_users(model, rec.history, rec.history_valid, None, batch_size=batch_size)
    popular = data.corpus[:total]  # most engaged first
    hits = {v: np.zeros(len(rec), dtype=bool) for v in VARIANTS}
    first = np.full(len(rec), -1, dtype=np.int64)
    first[rec.first] = np.arange(rec.users.size)
    user_lists: dict[tuple[str, str], list[np.ndarray]] = {v: [] for v in VARIANTS}
    r_all, k, d = users.embeddings.shape
    for start in range(0, r_all, batch_size):
        stop = min(start + batch_size, r_all)
        top = top_n(
            users.embeddings[start:stop].reshape(-1, d),
            items,
            depth,
            query_mask=users.slot_mask[start:stop].reshape(-1),
        )
        pos = top.positions.reshape(stop - start, k, depth)  # [b, K, depth]
        ids = np.where(pos >= 0, corpus_ids[np.maximum(pos, 0)], -1)
        scores = top.scores.reshape(stop - start, k, depth)
        for i, r in enumerate(range(start, stop)):
            # as the evaluation: a slot serves when used with importance > 0; a user with
            # none (no history) gets the most popular items
            used = np.flatnonzero(users.slot_mask[r] & (users.importance[r] > 0))
            imp = users.importance[r, used].astype(np.float64)
            for b_name, m_name in VARIANTS:
                if used.size == 0:
                    served = popular
                else:
                    served = serve(
                        ids[i, used],
                        scores[i, used],
                        imp,
                        BUDGETS[b_name](imp, total, settings.floor),
                        MERGES[m_name],
                        total=total,
                        overfetch=settings.overfetch,
                    )
                hits[(b_name, m_name)][r] = rec.target[r] in set(served.tolist())
                if first[r] >= 0:
                    user_lists[(b_name, m_name)].append(served)
    targets = rec.user_items()  # users in order, as their first records come
    return {
        f"{v[0]}, {v[1]}": {
            "served_hr": float(hits[v].mean()),
            "coverage": float(np.mean(interest_coverage(targets, user_lists[v], data.item_topics))),
            "diversity": float(np.mean(topic_diversity(user_lists[v], data.item_topics))),
        }
        for v in VARIANTS
    }


def run(
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool = True,
    workers: int = 1,
    models: tuple[str, ...] = MODELS,
) -> Path:
    """Train and evaluate MIND and DCM per seed (seeds on `workers` processes), serve four
    ways; write ``out_dir/report.md``."""
    say = announcer(progress)
    sections = [
        f"Served lists at budget {config.eval.budget} from an exact search of the corpus; "
        f"mean ± std over {len(seeds)} seed(s). Budgets by importance split the budget in "
        "proportion to each cluster's routed mass (Section 3.5); equal budgets give every "
        "used embedding the same share. Round-robin merges with deduplication; global top-k "
        "keeps the highest scores over all lists (Section 4.4)."
    ]
    plots = {}
    for name in models:
        job = (name, with_overrides(config, {"model": {"name": name}}))
        results = run_jobs(
            [job], data_dir, out_dir, seeds, progress=progress, announce=say, workers=workers
        )[name]
        if say is not None:
            say(f"{name}: serving four ways")
        per_seed = [served_variants(r.run_dir, data_dir) for r in results]
        summaries = {
            label: {m: _report.mean_std([s[label][m] for s in per_seed]) for m in METRICS}
            for label in per_seed[0]
        }
        check = _report.summarize([r.report for r in results])
        sections.append(f"## {name}\n\n" + _report.seed_table(summaries, METRICS, first="serving"))
        sections.append(
            "From `eval.json` (budgets by importance): served HR round-robin "
            f"{_report.fmt(check.get('served_hr_round_robin'))}, global top-k "
            f"{_report.fmt(check.get('served_hr_global_topk'))}."
        )
        plots[name] = _report.plot_bars(
            summaries, METRICS, out_dir / f"merge_{name}.png", title=f"{name}: serving strategies"
        )
    sections.append("\n\n".join(f"![{n}]({p.name})" for n, p in plots.items()))
    return _report.write_report(out_dir, "Merging and budgets (Section 4.4)", sections)
