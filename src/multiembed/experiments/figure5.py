"""Figure 5: one user's sequence item embeddings and the cluster centroids in 2-D.

As in the paper's Figure 5, four models with 4 clusters are trained on the same
data: DCM, DCM without single-assignment routing, DCM without the validity mask
of its farthest-point initialisation, and MIND (capsules). For one user (the one
whose history spans the most topics) each model's items and its K interest
conditions (the centroids the clustering ends with) are projected together onto
their first two principal components (PCA by SVD). The items are drawn in the
space the model clusters in: the item summaries (Eq. 4) for DCM, and for MIND
the summaries mapped by its bilinear matrix S, since its capsules are sums of
S e_i. Items are coloured by top-level topic; centroids are black stars sized by
cluster importance. Only the first seed is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiembed.config import Config
from multiembed.eval import load_eval_data
from multiembed.experiments import _case, _report
from multiembed.experiments._runs import announcer, run_jobs, with_overrides
from multiembed.nn.features import ItemLookup, encode_items
from multiembed.runs import LoadedRun, load_run

VARIANTS: dict[str, dict[str, Any]] = {
    "DCM": {"name": "dcm", "k": 4},
    "DCM w/o SAR": {"name": "dcm", "k": 4, "dcm_routing": "vanilla"},
    "DCM w/o validity mask": {"name": "dcm", "k": 4, "validity_aware": False},
    "MIND (capsules)": {"name": "mind", "k": 4},
}


def pca_2d(x: np.ndarray) -> np.ndarray:
    """``[N, D]`` -> ``[N, 2]``: centred, onto the two leading right singular vectors.

    >>> p = pca_2d(np.array([[0.0, 0, 1], [2, 0, 1], [4, 0, 1]]))
    >>> np.allclose(np.abs(p[:, 0]), [2, 0, 2]), np.allclose(p[:, 1], 0)
    (True, True)
    """
    centred = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))  # zeros where N or D < 2


def sequence_and_centroids(
    run: LoadedRun, history: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One user's ``[L', D]`` items (real ones) in the space the extractor clusters in,
    ``[K', D]`` conditions, importance, and the ``[L']`` rows of `history` they come from.

    That space is the item summaries' (Eq. 4), or for a capsule extractor (MIND) the
    summaries mapped by its bilinear matrix (u_i = S e_i), where its capsules live."""
    model = run.model
    tower: Any = model.user_tower
    ids = torch.as_tensor(history[None], dtype=torch.int64)  # [1, L]
    mask = ids >= 0
    with torch.no_grad():
        model.eval()
        e = encode_items(tower.summariser, ItemLookup(ids, model.features()))  # [1, L, D_e]
        valid_t = torch.as_tensor(valid[None]) & mask
        extractor = tower.conditions.extractor
        interests = extractor(e, mask, valid_t, item_ids=ids)
        space = e @ extractor.bilinear if hasattr(extractor, "bilinear") else e
    rows = np.flatnonzero(mask[0].numpy())
    used = interests.slot_mask[0].numpy()
    return (
        space[0].numpy()[rows],
        interests.conditions[0].numpy()[used],
        interests.importance[0].numpy()[used],
        rows,
    )


def run(
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Train the four models (first seed) and draw ``out_dir/figure5.png``."""
    from matplotlib import pyplot as plt

    say = announcer(progress)
    seed = seeds[:1]
    fig, axes = plt.subplots(2, 2, figsize=(10, 9))
    record = None
    lines = []
    for ax, (label, model) in zip(axes.ravel(), VARIANTS.items(), strict=True):
        cfg = with_overrides(config, {"model": model})
        tag = "figure5-" + "".join(c if c.isalnum() else "_" for c in label.lower())
        (result,) = run_jobs(
            [(tag, cfg)], data_dir, out_dir, seed, progress=progress, announce=say
        )[tag]
        loaded = load_run(result.run_dir, data_dir=data_dir)
        c = loaded.config
        data = load_eval_data(data_dir, split=c.split, examples=c.examples, config=c.eval)
        topics = _case.load_topics(data_dir, int(data.item_topics.max()) + 1)
        main = _case.item_main_topic(data.item_topics, topics)
        if record is None:
            record = _case.pick_record(data, main)
        history = data.records.history[record]
        valid = data.records.history_valid[record]
        items, centroids, importance, rows = sequence_and_centroids(loaded, history, valid)
        points = pca_2d(np.concatenate([items, centroids]))
        p_items, p_cent = points[: len(items)], points[len(items) :]
        item_topic = main[history[rows]]
        palette = plt.get_cmap("tab20")
        for t in np.unique(item_topic):
            sel = item_topic == t
            colour, name = palette(int(t) % 20), topics.name(int(t))
            ax.scatter(*p_items[sel].T, s=28, alpha=0.8, color=colour, label=name)
        invalid = ~valid[rows]
        ax.scatter(*p_items[invalid].T, s=60, facecolors="none", edgecolors="grey", label="invalid")
        size = 120 + 400 * importance / max(float(importance.max()), 1e-9)
        ax.scatter(*p_cent.T, marker="*", s=size, c="black", label="centroids")
        ax.set_title(f"{label}: {len(centroids)} clusters")
        ax.set(xlabel="principal component 1", ylabel="principal component 2")
        lines.append(
            f"| {label} | {len(centroids)} | "
            + ", ".join(f"{w:.2f}" for w in sorted(importance, reverse=True))
            + " |"
        )
    user = int(data.records.user[record]) if record is not None else -1
    legend: dict[str, Any] = {}  # one legend for the four panels, below them
    for ax in axes.ravel():
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(text, handle)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=6, fontsize=8)
    fig.suptitle(
        f"user {user}: history items (by top-level topic) and cluster centroids, "
        "each panel its own PCA"
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    png = _report.save(fig, out_dir / "figure5.png")
    sections = [
        f"User id {user} (the evaluation user whose history spans the most topics), "
        f"seed {seed[0]}. Items are coloured by top-level topic; hollow circles mark invalid "
        "items (no features or a negative action), which validity-aware FPI never picks as "
        "a seed; stars are the centroids, sized by importance.",
        "| model | clusters | importance |\n|:--|--:|:--|\n" + "\n".join(lines),
        f"![figure 5]({png.name})",
    ]
    return _report.write_report(out_dir, "Figure 5: sequence and centroids in 2-D", sections)
