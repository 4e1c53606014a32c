"""Search the exported embeddings with FAISS alone: one search per user embedding, merged.

    python examples/faiss_search.py --export /tmp/shop/export --user c0000

reads the Parquet files `multiembed export` (or `multiembed.api.export`) wrote,
with pyarrow, NumPy and FAISS only, as any vector database would ingest them:

1. ``items.parquet`` -> an exact inner-product index (``IndexFlatIP``; the
   files' metadata says ``metric = inner_product``);
2. the user's rows of ``users.parquet``: one embedding per interest, with its
   importance (the share of the history routed to it);
3. each embedding searches with a budget proportional to its importance;
4. the lists are merged round-robin with deduplication: the first list's best
   item, then the second's, ..., then every list's second item, ..., and an item
   already taken keeps its first place.

Without ``--export`` it first runs ``own_csv_end_to_end.py`` into a temp dir
(about 15 seconds).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq


def vectors(table: object) -> np.ndarray:
    """The ``embedding`` column (a fixed-size list of float32) as ``[N, D]``."""
    column = table.column("embedding").combine_chunks()  # type: ignore[attr-defined]
    return column.values.to_numpy().reshape(len(column), -1).astype(np.float32)


def budgets(importance: np.ndarray, total: int) -> np.ndarray:
    """Budgets proportional to importance that sum to `total` (largest remainders)."""
    share = importance / importance.sum() * total
    out = np.floor(share).astype(int)
    out[np.argsort(out - share)[: total - out.sum()]] += 1
    return out


def round_robin(lists: list[list[str]]) -> list[tuple[str, int, int]]:
    """Merge ranked lists: ``(item, list, rank)`` in round-robin order, each item once."""
    merged, seen = [], set()
    for rank in range(max(map(len, lists), default=0)):
        for j, hits in enumerate(lists):
            if rank < len(hits) and hits[rank] not in seen:
                seen.add(hits[rank])
                merged.append((hits[rank], j, rank))
    return merged


def search(export: Path, user: str | None, total: int) -> list[tuple[str, int, int]]:
    items = pq.read_table(export / "items.parquet")
    meta = {k.decode(): v.decode() for k, v in (items.schema.metadata or {}).items()}
    print(f"items.parquet: {items.num_rows} items, {meta}")
    index = faiss.IndexFlatIP(vectors(items).shape[1])
    index.add(vectors(items))
    item_ids = items.column("item_id").to_pylist()

    users = pq.read_table(export / "users.parquet")
    user = user or users.column("user_id")[0].as_py()
    mine = users.filter(np.asarray(users.column("user_id").to_pylist()) == user)
    queries, importance = vectors(mine), mine.column("importance").to_numpy()
    per_list = budgets(importance, total)
    _, found = index.search(queries, int(per_list.max()))  # [K, max budget]
    lists = [[item_ids[i] for i in found[k, : per_list[k]] if i >= 0] for k in range(len(found))]
    merged = round_robin(lists)
    print(f"user {user}: {len(lists)} embeddings, budgets {per_list.tolist()}")
    for n, (item, j, rank) in enumerate(merged):
        print(f"  {n:2d}. {item:<12} from embedding {j} at rank {rank}")
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="directory with items/users.parquet")
    parser.add_argument("--user", help="raw user id in users.parquet (default: the first)")
    parser.add_argument("--budget", type=int, default=10, help="candidates in total")
    args = parser.parse_args()
    export = args.export
    if export is None:
        from own_csv_end_to_end import run  # the example beside this one

        export = run(Path(tempfile.mkdtemp(prefix="multiembed-shop-"))).out_dir
    search(export, args.user, args.budget)


if __name__ == "__main__":
    main()
