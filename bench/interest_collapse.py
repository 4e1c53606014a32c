"""Diagnosis: where a trained DCM run's interests collapse, step by step.

For the last ``--users`` users of a prepared data directory (their latest
``seq_len`` engagements, as the model sees them), the run's own summariser and
extractor settings are replayed, and each stage prints one JSON line:

- ``routing``: how many of the K clusters keep an item (and how many survive the
  run's ``dcm_min_share`` pruning) when routing reads an item's affinity to a
  centroid as c^T e (``dot``, Eq. 7) or against the centroid's direction
  (``cosine``), from the same farthest-point seeds;
- ``cosine``: the mean pairwise cosine of a user's interests at three depths:
  the conditions (cluster centroids in the summary space), the conditions mapped
  into the item space (the item tower's projection, with ``share_items``), and
  the user tower's final embeddings (crossing with the summary field added);
- ``items``: the mean pairwise cosine of random item embeddings, a floor for how
  far apart a user's interests can be in that space.

    python bench/interest_collapse.py RUN_DIR DATA_DIR [--users 600]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from multiembed.data.histories import latest_per_user
from multiembed.data.schema import POSITIVE_ACTIONS
from multiembed.nn.features import encode_items
from multiembed.nn.functional import (
    farthest_point_init,
    mean_pairwise_cosine,
    significant_slots,
    single_assignment_routing,
)
from multiembed.runs import inference, load_run, prepared_table


def histories(data_dir: Path, n_users: int, length: int) -> torch.Tensor:
    """``[U, length]`` item ids of the last ``n_users`` users' latest positive
    engagements, oldest first, ``-1`` padding."""
    table = prepared_table(data_dir, "engagements.parquet")
    columns = {name: table[name].to_numpy() for name in ("user_id", "item_id", "ts", "action")}
    keep = np.isin(columns["action"], POSITIVE_ACTIONS)
    user, item, ts = (columns[name][keep] for name in ("user_id", "item_id", "ts"))
    order = np.lexsort((ts, user))  # by user, then time
    n = int(user.max()) + 1 if user.size else 0
    rows = latest_per_user(user[order], item[order], n, length, fill=-1)
    rows = rows[(rows >= 0).any(axis=1)][-n_users:]
    return torch.as_tensor(rows.astype(np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--users", type=int, default=600)
    args = parser.parse_args()
    run = load_run(args.run, data_dir=args.data)
    model, m = run.model, run.config.model
    if m.kind != "implicit" or m.name != "dcm":
        raise SystemExit(f"{args.run}: a DCM run is needed, got {m.kind} {m.name}")
    tower = model.user_tower
    extractor = tower.conditions.extractor
    ids = histories(args.data, args.users, run.config.examples.seq_len)
    mask = ids >= 0
    with inference(model):
        e = encode_items(tower.summariser, run.features.lookup(ids))  # [U, L, D_e]
        seeds = farthest_point_init(e, mask, extractor.k, generator=None, valid=mask)
        init = e.gather(1, seeds.indices.unsqueeze(-1).expand(-1, -1, e.shape[-1]))
        for affinity in ("dot", "cosine"):
            routed = single_assignment_routing(
                e,
                mask,
                init,
                iterations=m.iterations,
                slot_mask=seeds.is_real,
                affinity=affinity,
            )
            used = seeds.is_real & (routed.importance > 0)
            kept = significant_slots(routed.importance, used, m.dcm_min_share)
            emit(
                {
                    "stage": "routing",
                    "affinity": affinity,
                    "k": extractor.k,
                    "clusters_used": mean(used),
                    "clusters_kept": mean(kept),
                }
            )
        interests = extractor(e, mask, mask, item_ids=ids)
        out = model.embed_users(ids, mask)
        depths = {"conditions": interests.conditions}
        if tower.condition_out is not None:
            depths["conditions_in_item_space"] = tower.condition_out(interests.conditions)
        for name, vectors in depths.items():
            emit(
                {
                    "stage": "cosine",
                    "of": name,
                    "mean_pairwise": round(
                        float(mean_pairwise_cosine(vectors, interests.slot_mask)), 3
                    ),
                }
            )
        emit(
            {
                "stage": "cosine",
                "of": "embeddings",
                "interests_per_user": mean(out.slot_mask),
                "mean_pairwise": round(
                    float(mean_pairwise_cosine(out.embeddings, out.slot_mask)), 3
                ),
            }
        )
        items = F.normalize(model.embed_items(torch.arange(run.features.n_items)), dim=-1)
        sample = items[
            torch.randperm(len(items), generator=torch.Generator().manual_seed(0))[:1000]
        ]
        emit(
            {"stage": "items", "mean_pairwise": round(float(mean_pairwise_cosine(sample[None])), 3)}
        )


def mean(slots: torch.Tensor) -> float:
    """Mean number of True slots per row."""
    return round(float(slots.sum(dim=1).float().mean()), 2)


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
