"""Serve a run over HTTP and query it: ``multiembed serve`` in a child process, then POST /retrieve.

    python examples/serve_and_query.py --run /tmp/shop/run --data /tmp/shop/data --user c0000

starts ``multiembed serve`` on 127.0.0.1 and a free port (no token is needed on
the loopback address), waits until ``GET /readyz`` answers 200, asks
``POST /retrieve`` for a user's candidates, prints them with the list that
placed each one, and stops the server with Ctrl-C's signal (SIGINT), as a
terminal would. Every wait is bounded: the script never outlives its
``--timeout``.

Without ``--run`` it first runs ``own_csv_end_to_end.py`` into a temp dir
(about 15 seconds).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen[bytes], deadline: float) -> None:
    """Poll ``GET url/readyz`` until it answers 200; fail if the server exits or time runs out."""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server at {url} was not ready in time")


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/retrieve",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def show(answer: dict[str, Any]) -> None:
    lists = answer["lists"]
    print(f"model {answer['model_version']}, user {answer['user_id']}:")
    for j, entry in enumerate(lists):
        print(f"  list {j}: {entry['source']} budget {entry['budget']} found {entry['found']}")
    c = answer["candidates"]
    rows = zip(c["item_id"], c["list"], c["rank"], c["score"], strict=True)
    for n, (item, j, rank, score) in enumerate(rows):
        print(f"  {n:2d}. {item!s:<12} list {j} rank {rank} score {score:.3f}")


def serve_and_query(run: Path, data: Path, user: str, budget: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "multiembed", "serve", str(run), "--data", str(data)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--index-factory", "Flat"]
    server = subprocess.Popen(command)
    try:
        wait_ready(url, server, deadline)
        answer = post(url, {"user_id": user, "budget": budget})
        show(answer)
        return answer
    finally:
        server.send_signal(signal.SIGINT)  # uvicorn finishes its requests and exits
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="run directory (default: train one first)")
    parser.add_argument("--data", type=Path, help="its prepared data directory")
    parser.add_argument("--user", default="c0000", help="raw user id")
    parser.add_argument("--budget", type=int, default=10, help="candidates")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for it all")
    args = parser.parse_args()
    run, data = args.run, args.data
    if run is None:
        from own_csv_end_to_end import run as build  # the example beside this one

        out = build(Path(tempfile.mkdtemp(prefix="multiembed-shop-"))).out_dir.parent
        run, data = out / "run", out / "data"
    if data is None:
        parser.error("--data: give the run's prepared data directory with --run")
    serve_and_query(run, data, args.user, args.budget, args.timeout)


if __name__ == "__main__":
    main()
