"""Benchmark: generate a synthetic world of about N engagements and prepare it.

Scales `n_users` (other parameters at their defaults) so that the world has
about `--engagements` engagement rows, then runs the full prepare
(`multiembed.data.prepare.prepare`) into `--out`, and prints one JSON line:

    {"engagements": ..., "seconds": ..., "rows_per_s": ..., "peak_rss_mb": ..., ...}

`seconds` covers generation and preparation (the world's streams are lazy, so
they cannot be timed apart). With `--generate-only`, or when `prepare` is not
importable, the streams are written as raw Parquet with `ParquetWriter`
instead. Peak RSS is the process's maximum resident set (`getrusage`).

    python bench/prepare_synthetic.py --engagements 10_000_000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from multiembed.config.sections import DataConfig, SyntheticConfig
from multiembed.data.synthetic import SyntheticAdapter

PILOT_USERS = 20_000


def users_for(engagements: int, base: SyntheticConfig) -> int:
    """Number of users for about `engagements` rows, from a pilot run of `PILOT_USERS` users."""
    pilot = dataclasses.replace(base, n_users=PILOT_USERS)
    rows = sum(b.num_rows for b in SyntheticAdapter(pilot).read().engagements())
    return max(1, round(engagements * PILOT_USERS / rows))


def _write(stream: Callable[[], Iterator[pa.RecordBatch]], path: Path) -> int:
    rows = 0
    writer: pq.ParquetWriter | None = None
    for batch in stream():
        if writer is None:
            writer = pq.ParquetWriter(path, batch.schema)
        writer.write_batch(batch)
        rows += batch.num_rows
    if writer is not None:
        writer.close()
    return rows


def generate_only(adapter: SyntheticAdapter, out: Path) -> dict[str, Any]:
    raw = adapter.read()
    out.mkdir(parents=True, exist_ok=True)
    return {
        "items": _write(raw.items, out / "raw_items.parquet"),
        "engagements": _write(raw.engagements, out / "raw_engagements.parquet"),
        "user_topics": _write(raw.user_topics, out / "raw_user_topics.parquet"),
    }


def run_prepare(adapter: SyntheticAdapter, out: Path) -> dict[str, Any] | None:
    try:
        from multiembed.data.prepare import prepare
    except ImportError:
        return None
    report = prepare(adapter.read(), out, config=DataConfig())
    return dict(report)


def _engagements_kept(report: dict[str, Any]) -> int | None:
    """Rows written to engagements.parquet, wherever the report keeps the count."""
    tables = report.get("tables", report)
    entry = tables.get("engagements") if isinstance(tables, dict) else None
    if isinstance(entry, dict):
        for key in ("rows_kept", "kept", "rows_out"):
            if isinstance(entry.get(key), int):
                return int(entry[key])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engagements", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=None, help="output dir (default: temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--users", type=int, default=None, help="use exactly this many users (no scaling)"
    )
    parser.add_argument("--generate-only", action="store_true", help="skip prepare")
    parser.add_argument("--ground-truth", action="store_true", help="also write ground truth")
    args = parser.parse_args(argv)

    base = SyntheticConfig(seed=args.seed)
    n_users = args.users if args.users is not None else users_for(args.engagements, base)
    config = dataclasses.replace(base, n_users=n_users)
    adapter = SyntheticAdapter(config)

    with tempfile.TemporaryDirectory(prefix="multiembed-bench-") as tmp:
        out = args.out if args.out is not None else Path(tmp)
        start = time.perf_counter()
        report = None if args.generate_only else run_prepare(adapter, out)
        mode = "prepare"
        if report is None:
            mode = "generate"
            rows = generate_only(adapter, out)["engagements"]
        else:
            rows = (
                _engagements_kept(report)
                or pq.ParquetFile(out / "engagements.parquet").metadata.num_rows
            )
        if args.ground_truth:
            adapter.write_ground_truth(out)
        seconds = time.perf_counter() - start

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = {
        "engagements": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "mode": mode,
        "n_users": n_users,
        "n_items": config.n_items,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
