"""Benchmark: HTTP latency of ``multiembed serve`` on loopback, open loop at a fixed rate.

Prepares the default synthetic world (or uses ``--run``/``--data``), trains a short
DCM run when none is given, starts ``multiembed serve`` in a subprocess (so the
client does not share the server's interpreter), and sends ``POST /retrieve``
for known users (distinct users in turn) at a fixed arrival rate. With ``--body
history`` a request carries the user's last ``L`` items as raw ids instead of the
user id, so the user tower runs in each request; ``--tower`` is the service's
(``auto``, its default: onnxruntime where it is installed; ``onnx``; ``torch``). Open loop:
request ``i`` is scheduled at ``t0 + i / rate`` and its latency counts from that
scheduled time, so a slow server is charged for the queue it builds (no
coordinated omission). Every line printed is JSON:

    {"mode": "multi", "where": "http", "rate": 100, "p50_ms": .., "p90_ms": .., "p99_ms": ..,
     "status": {"200": ..}, "body_kb": ..}
    {"study": "max_rate_p99_under_50ms", "rate": ..}

    python bench/serve_http.py                          # default world, 100 req/s for 20 s
    python bench/serve_http.py --run RUN --data DATA    # an existing run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(root: Path, steps: int) -> tuple[Path, Path]:
    from multiembed.config import Config, parse
    from multiembed.data import prepare_dataset
    from multiembed.train import train

    data, run = root / "data", root / "run"
    prepare_dataset("synthetic", None, data, config=Config())
    train(parse(Config, {"train": {"max_steps": steps, "threads": 1}}), data, run)
    return run, data


def _bodies(run: Path, data: Path, kind: str) -> list[dict[str, Any]]:
    """One request body per known user: its raw id, or its last ``L`` items' raw ids."""
    import pyarrow.parquet as pq

    from multiembed.data.histories import latest_per_user
    from multiembed.data.schema import ENGAGEMENTS_FILE
    from multiembed.data.vocab import Vocab
    from multiembed.runs import load_run

    users = Vocab.load(run / "vocab" / "users.parquet").raw.to_pylist()
    if kind == "user":
        return [{"user_id": u} for u in users]
    seq_len = load_run(run).config.examples.seq_len
    eng = pq.read_table(data / ENGAGEMENTS_FILE, columns=["user_id", "item_id", "ts"])
    user, item, ts = (np.asarray(eng.column(c).to_numpy(), np.int64) for c in eng.column_names)
    order = np.lexsort((np.arange(user.size), ts, user))
    last = latest_per_user(user[order], item[order], len(users), seq_len, fill=-1)  # [U, L]
    raw = Vocab.load(run / "vocab" / "items.parquet")
    return [{"history": raw.decode(row[row >= 0]).to_pylist()} for row in last if row.max() >= 0]


async def _open_loop(
    base: str, token: str, bodies: list[dict[str, Any]], rate: float, seconds: float, budget: int
) -> dict[str, Any]:
    n = int(rate * seconds)
    lat = np.full(n, np.nan)
    sizes = np.full(n, np.nan)  # body bytes of each 200
    codes: dict[int, int] = {}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=10) as c:

        async def one(i: int, due: float) -> None:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body = bodies[i % len(bodies)] | {"budget": budget}
            try:
                r = await c.post("/retrieve", json=body)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    sizes[i] = len(r.content)
            except httpx.HTTPError:
                codes[-1] = codes.get(-1, 0) + 1
            lat[i] = (time.perf_counter() - due) * 1e3

        t0 = time.perf_counter() + 0.2
        await asyncio.gather(*(one(i, t0 + i / rate) for i in range(n)))
    p50, p90, p99 = np.percentile(lat, [50, 90, 99])
    return {
        "mode": "multi",
        "where": "http",
        "rate": rate,
        "requests": n,
        "budget": budget,
        "p50_ms": round(float(p50), 2),
        "p90_ms": round(float(p90), 2),
        "p99_ms": round(float(p99), 2),
        "status": {str(k): v for k, v in sorted(codes.items())},
        "body_kb": round(float(np.nanmean(sizes)) / 1024, 1) if codes.get(200) else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--steps", type=int, default=100, help="training steps without --run")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--max-rate-seconds", type=float, default=5.0)
    ap.add_argument("--index-factory", default="HNSW32")
    ap.add_argument(
        "--body",
        choices=("user", "history"),
        default="user",
        help="what a request sends: a known user's id (embedded when the service loads) or "
        "their last items as raw ids (the user tower runs in the request)",
    )
    ap.add_argument(
        "--tower",
        choices=("auto", "onnx", "torch"),
        default="auto",
        help="what runs the service's user tower (`multiembed serve --tower`)",
    )
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="serve-http-")
    if args.run is None:
        run, data = _prepare(Path(tmp.name), args.steps)
    else:
        run, data = args.run, args.data
    bodies = _bodies(run, data, args.body)
    token = secrets.token_urlsafe(24)
    port = _port()
    env = {**os.environ, "MULTIEMBED_API_TOKEN": token, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "multiembed", "serve", str(run), "--data", str(data)]
    cmd += ["--port", str(port), "--index-factory", args.index_factory]
    cmd += ["--tower", args.tower]
    # the server's log goes to a file: a pipe nobody drains fills up (about 600 access-log
    # lines) and then blocks the server in the middle of a run
    with Path(tmp.name, "server.log").open("wb") as log:
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 300
            while time.time() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise SystemExit(Path(log.name).read_text(errors="replace") or "exited")
                time.sleep(0.2)
            asyncio.run(_open_loop(base, token, bodies, 50, 2, args.budget))  # warm-up
            main_run = _open_loop(base, token, bodies, args.rate, args.seconds, args.budget)
            context = {"body": args.body, "tower": args.tower}
            print(json.dumps(asyncio.run(main_run) | context), flush=True)
            best = None
            for rate in (100, 150, 200, 300, 400, 600, 800):
                res = asyncio.run(
                    _open_loop(base, token, bodies, rate, args.max_rate_seconds, args.budget)
                )
                print(json.dumps({"study": "rate_sweep", **res} | context), flush=True)
                ok = res["p99_ms"] < 50 and set(res["status"]) == {"200"}
                if not ok:
                    break
                best = rate
            print(json.dumps({"study": "max_rate_p99_under_50ms", "rate": best}), flush=True)
        finally:
            server.terminate()
            server.wait(10)
    tmp.cleanup()


if __name__ == "__main__":
    main()
