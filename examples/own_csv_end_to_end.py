"""Your own engagement log, end to end: CSV -> prepare -> train -> evaluate -> export.

    python examples/own_csv_end_to_end.py --out /tmp/shop

writes a small shop's log as CSV (text user and item ids, ISO-8601 times with a
``Z``, an event column with the shop's own action names), an item file with
topics and a column mapping, then runs the Python API's steps on it:

- ``OUT/log.csv``, ``OUT/products.csv``, ``OUT/mapping.toml``: the raw files;
- ``OUT/data``: the prepared tables (``report.json``, ``quarantine.parquet``);
- ``OUT/run``: a DCM model trained for 150 steps, with ``eval.json``
  (``serve_and_query.py`` serves it);
- ``OUT/export``: ``items.parquet`` and ``users.parquet`` (raw ids), which
  ``faiss_search.py`` searches.

It takes about 15 seconds on one CPU core. The log is made up: 120 users who
each like two of six product families, so that a short training run has
two interests per user to find.
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import multiembed.api as me

FAMILIES = ("shoes", "tents", "books", "coffee", "games", "plants")
MAPPING = """\
# The columns of log.csv, and how to read them.
user = "customer"
item = "sku"
ts = "time"                 # ISO-8601 with Z or an offset, or integer seconds
action = "event"
integer_ids = false         # customer and sku ids are text
[action_map]                # the shop's event names -> multiembed's action kinds
view = "click"
basket = "cart"
buy = "purchase"
[items]                     # one row per product, with its families as topics
file = "products.csv"
topics = "families"
"""
# Small enough to train in seconds on one core: D = 16, K = 3, a history of 12.
SETTINGS = {
    "examples": {"seq_len": 12},
    "model": {"name": "dcm", "k": 3, "dim": 16, "id_dim": 8, "hidden_dim": 16},
    "train": {"batch_size": 64, "threads": 1},
}


def write_shop(out: Path, *, users: int = 120, per_family: int = 40, seed: int = 0) -> None:
    """The raw files: ``log.csv``, ``products.csv``, ``mapping.toml`` and ``histories.csv``."""
    rng = random.Random(seed)
    skus = {f: [f"{f}-{n:03d}" for n in range(per_family)] for f in FAMILIES}
    with (out / "products.csv").open("w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["sku", "families"])
        for family, names in skus.items():
            rows.writerows([name, family] for name in names)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    with (out / "log.csv").open("w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["customer", "sku", "time", "event"])
        for u in range(users):
            liked = rng.sample(FAMILIES, 2)
            for n in range(rng.randint(15, 30)):
                sku = rng.choice(skus[rng.choice(liked)])
                when = start + timedelta(hours=6 * n + rng.random())
                event = rng.choices(["view", "basket", "buy"], [8, 2, 1])[0]
                rows.writerow([f"c{u:04d}", sku, when.strftime("%Y-%m-%dT%H:%M:%SZ"), event])
    (out / "mapping.toml").write_text(MAPPING)
    # Histories of two customers, as `export` reads them (raw ids).
    with (out / "log.csv").open() as f, (out / "histories.csv").open("w", newline="") as g:
        rows = csv.writer(g)
        rows.writerow(["user_id", "item_id", "timestamp"])
        rows.writerows(
            [r["customer"], r["sku"], r["time"]]
            for r in csv.DictReader(f)
            if r["customer"] in ("c0000", "c0001")
        )


def run(out: Path, *, steps: int = 150) -> me.Exported:
    """Everything above, into `out`; returns what `export` wrote."""
    out.mkdir(parents=True, exist_ok=True)
    write_shop(out)

    data = me.prepare(out / "log.csv", out / "data", mapping=out / "mapping.toml")
    print(f"prepared: {data.counts} · quarantined: {data.quarantined}")

    trained = me.train(data.data_dir, out / "run", config=SETTINGS, max_steps=steps, progress=False)
    print(f"trained {trained.model_version}: {trained.steps} steps, loss {trained.final_loss:.3f}")

    evaluation = me.evaluate(trained.run_dir, data.data_dir, progress=False)
    hr = {k: round(v, 3) for k, v in evaluation.metrics.items() if k.startswith("hr@") and v}
    print(f"evaluated: {hr} -> {evaluation.report_file}")

    exported = me.export(
        trained.run_dir, out / "export", users=out / "histories.csv", data=data.data_dir
    )
    print(f"exported D = {exported.dim}: {exported.items_file}, {exported.users_file}")
    return exported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="working directory (default: a new temp dir)")
    parser.add_argument("--steps", type=int, default=150, help="training steps")
    args = parser.parse_args()
    run(args.out or Path(tempfile.mkdtemp(prefix="multiembed-shop-")), steps=args.steps)


if __name__ == "__main__":
    main()
