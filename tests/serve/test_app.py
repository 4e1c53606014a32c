"""The HTTP app: auth, requests, saturation, readiness, corrupt candidates, hot swap under load.

Hostile input and the body limits are in ``test_api_input.py``; the OpenAPI
contract in ``test_api_schema.py``; connection timeouts in ``test_server.py``.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import multiembed
import multiembed.serve._app as app_module
from multiembed.index import IndexIntegrityError
from multiembed.serve import (
    RetrieveRequest,
    Served,
    ServeLimits,
    ServingBundle,
    build_bundle,
    create_app,
    index_dir_for,
)
from tests.serve.live_server import live_server

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(bundle: ServingBundle) -> Iterator[TestClient]:
    app = create_app(lambda: bundle, token=TOKEN, limits=ServeLimits(), initial=bundle)
    with TestClient(app) as c:
        yield c


def _raw_user(bundle: ServingBundle) -> Any:
    return bundle.vocab.users.raw.to_pylist()[3]


def _check_clean(body: dict[str, Any]) -> None:
    """Columns of one length, no -1 id, finite scores, no repeats, indices in range."""
    cand, also = body["candidates"], body["also_found_by"]
    n = len(cand["item_id"])
    assert {len(cand[k]) for k in ("item_id", "score", "list", "rank")} == {n}
    assert {len(also[k]) for k in ("candidate", "list", "rank", "score")} == {len(also["list"])}
    assert -1 not in cand["item_id"]
    assert all(math.isfinite(v) for v in cand["score"] + also["score"])
    assert len(set(cand["item_id"])) == n
    lists = len(body["lists"])
    assert all(0 <= i < lists for i in cand["list"] + also["list"])
    assert all(0 <= i < n for i in also["candidate"])
    assert min(cand["rank"] + also["rank"], default=0) >= 0


def _kinds(body: dict[str, Any]) -> list[str]:
    """The kind of the list that placed each candidate."""
    return [body["lists"][i]["source"]["kind"] for i in body["candidates"]["list"]]


def test_health_endpoints_are_open_and_retrieve_needs_the_token(
    client: TestClient, bundle: ServingBundle
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "model_version": bundle.model_version}
    assert client.get("/version").json() == {
        "model_version": bundle.model_version,
        "library_version": multiembed.__version__,
    }
    body = {"user_id": _raw_user(bundle), "budget": 10}
    missing = client.post("/retrieve", json=body)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing or wrong bearer token"}
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/retrieve", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.post("/admin/reload").status_code == 401
    in_url = client.post(f"/retrieve?token={TOKEN}&access_token={TOKEN}", json=body)
    assert in_url.status_code == 401  # the header only
    assert client.post("/retrieve", json=body, headers=AUTH).status_code == 200


def test_known_user_request_has_provenance_and_no_nan_or_placeholder(
    client: TestClient, bundle: ServingBundle
) -> None:
    r = client.post("/retrieve", json={"user_id": _raw_user(bundle), "budget": 30}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == bundle.model_version
    assert r.headers["content-type"] == "application/json"
    assert 0 < len(body["candidates"]["item_id"]) <= 30
    _check_clean(body)
    assert set(_kinds(body)) <= {"implicit", "explicit"}
    assert "NaN" not in r.text
    assert "null" not in r.text
    assert "topics" not in body
    assert "topics" not in body["candidates"]


def test_body_history_and_topics(client: TestClient, bundle: ServingBundle) -> None:
    items = bundle.vocab.items.raw.to_pylist()[:10]
    topics = bundle.vocab.topics.raw.to_pylist()[:2]
    body = {"history": [*items, 10**9], "followed_topics": topics, "budget": 20}
    r = client.post("/retrieve", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["unknown_items"] == 1
    _check_clean(out)
    explicit = [s for s in out["lists"] if s["source"]["kind"] == "explicit"]
    assert {s["source"]["topic"] for s in explicit} == set(topics)
    empty = client.post("/retrieve", json={"budget": 5}, headers=AUTH).json()
    assert _kinds(empty) == ["popular"] * 5
    assert empty["candidates"]["rank"] == [0, 1, 2, 3, 4]


def test_include_topics_names_each_candidates_topics(
    client: TestClient, bundle: ServingBundle
) -> None:
    body = {"user_id": _raw_user(bundle), "budget": 25, "include_topics": True}
    r = client.post("/retrieve", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    _check_clean(out)
    table, of = out["topics"], out["candidates"]["topics"]
    assert len(of) == len(out["candidates"]["item_id"])
    item_vocab = bundle.vocab.items.raw.to_pylist()
    topic_vocab = bundle.vocab.topics.raw.to_pylist()
    for raw_item, rows in zip(out["candidates"]["item_id"], of, strict=True):
        item = item_vocab.index(raw_item)
        expected = [int(t) for t in bundle.topics_of[item] if t >= 0]
        assert [table["topic"][k] for k in rows] == [topic_vocab[t] for t in expected]
        assert [table["name"][k] for k in rows] == [bundle.vocab.topic_names[t] for t in expected]


def test_unknown_user_is_404(client: TestClient) -> None:
    r = client.post("/retrieve", json={"user_id": 10**12}, headers=AUTH)
    assert r.status_code == 404
    assert r.json() == {"detail": f"user_id = {10**12}: unknown user"}


def _blocking_retrieve(monkeypatch: pytest.MonkeyPatch, gate: threading.Event) -> None:
    """Make the app's retrieve wait for `gate` (at most 5 s) before answering."""
    real = app_module.retrieve

    def blocking(b: ServingBundle, request: RetrieveRequest) -> Served:
        gate.wait(5)
        return real(b, request)

    monkeypatch.setattr(app_module, "retrieve", blocking)


def test_saturation_is_a_fast_503_with_retry_after(
    bundle: ServingBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    _blocking_retrieve(monkeypatch, gate)
    app = create_app(
        lambda: bundle,
        token=None,
        limits=ServeLimits(max_concurrency=1, max_waiting=0),
        initial=bundle,
    )
    with TestClient(app) as c, ThreadPoolExecutor(1) as pool:
        first = pool.submit(c.post, "/retrieve", json={"budget": 3})
        time.sleep(0.3)
        t0 = time.perf_counter()
        second = c.post("/retrieve", json={"budget": 3})
        assert time.perf_counter() - t0 < 0.5
        assert second.status_code == 503
        assert second.headers["retry-after"] == "1"
        gate.set()
        assert first.result().status_code == 200


def test_slow_retrieval_is_a_504_and_keeps_its_slot_until_done(
    bundle: ServingBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    _blocking_retrieve(monkeypatch, gate)
    limits = ServeLimits(max_concurrency=1, max_waiting=0, timeout_s=0.2)
    app = create_app(lambda: bundle, token=None, limits=limits, initial=bundle)
    with TestClient(app) as c:
        t0 = time.perf_counter()
        slow = c.post("/retrieve", json={"budget": 3})
        assert 0.2 <= time.perf_counter() - t0 < 2.0
        assert slow.status_code == 504
        assert slow.json() == {"detail": "retrieval took over 0.2 s"}
        busy = c.post("/retrieve", json={"budget": 3})  # the timed-out worker still runs
        assert busy.status_code == 503
        gate.set()
        deadline = time.time() + 5
        r = c.post("/retrieve", json={"budget": 3})
        while r.status_code == 503 and time.time() < deadline:
            time.sleep(0.02)
            r = c.post("/retrieve", json={"budget": 3})
        assert r.status_code == 200
        assert _kinds(r.json()) == ["popular"] * 3


def test_a_burst_waits_for_a_worker_and_one_more_is_a_503(
    bundle: ServingBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    _blocking_retrieve(monkeypatch, gate)
    limits = ServeLimits(max_concurrency=1, max_waiting=1)
    app = create_app(lambda: bundle, token=None, limits=limits, initial=bundle)
    with TestClient(app) as c, ThreadPoolExecutor(2) as pool:
        running = pool.submit(c.post, "/retrieve", json={"budget": 3})
        time.sleep(0.3)
        waiting = pool.submit(c.post, "/retrieve", json={"budget": 3})
        time.sleep(0.3)
        assert c.post("/retrieve", json={"budget": 3}).status_code == 503  # 1 + 1 admitted
        gate.set()
        assert running.result().status_code == 200
        assert waiting.result().status_code == 200  # it waited for the worker


def test_a_request_that_times_out_while_waiting_never_runs(
    bundle: ServingBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    calls: list[RetrieveRequest] = []
    real = app_module.retrieve

    def blocking(b: ServingBundle, request: RetrieveRequest) -> Served:
        calls.append(request)
        gate.wait(5)
        return real(b, request)

    monkeypatch.setattr(app_module, "retrieve", blocking)
    limits = ServeLimits(max_concurrency=1, max_waiting=1, timeout_s=0.3)
    app = create_app(lambda: bundle, token=None, limits=limits, initial=bundle)
    with TestClient(app) as c, ThreadPoolExecutor(1) as pool:
        running = pool.submit(c.post, "/retrieve", json={"budget": 3})
        time.sleep(0.1)
        assert c.post("/retrieve", json={"budget": 4}).status_code == 504  # it waited 0.3 s
        gate.set()
        assert running.result().status_code == 504
        time.sleep(0.3)
        assert [r.budget for r in calls] == [3]  # the waiting one was dropped, not run
        assert c.post("/retrieve", json={"budget": 3}).status_code == 200  # slots released


def _corrupt_copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    items = index_dir_for(dest, "HNSW32") / "items"
    target = max(
        (p for p in items.iterdir() if p.name != "manifest.json"), key=lambda p: p.stat().st_size
    )
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return dest


def test_corrupt_index_is_refused_and_the_old_bundle_keeps_serving(
    served_run: tuple[Path, Path], bundle: ServingBundle, tmp_path: Path
) -> None:
    run, data = served_run
    bad = _corrupt_copy(run, tmp_path / "bad_run")
    with pytest.raises(IndexIntegrityError):
        build_bundle(bad, data, "HNSW32")
    app = create_app(lambda: build_bundle(bad, data), token=TOKEN, initial=bundle)
    with TestClient(app) as c:
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 409
        assert r.json()["detail"].startswith("refused: ")
        assert r.json()["model_version"] == bundle.model_version
        assert c.get("/version").json()["model_version"] == bundle.model_version
        ok = c.post("/retrieve", json={"user_id": _raw_user(bundle), "budget": 5}, headers=AUTH)
        assert ok.status_code == 200


def test_hot_swap_under_load_has_no_failed_request(
    served_run: tuple[Path, Path], bundle: ServingBundle
) -> None:
    run, data = served_run
    versions = [bundle, build_bundle(run, data, "Flat")]
    turn = iter(range(10**6))

    def loader() -> ServingBundle:
        return versions[next(turn) % 2]

    app = create_app(loader, token=TOKEN, limits=ServeLimits(max_concurrency=8), initial=bundle)
    user = _raw_user(bundle)
    statuses: list[int] = []
    lock = threading.Lock()
    swaps = []
    with live_server(app, log_level="warning") as port:
        base = f"http://127.0.0.1:{port}"

        def worker(n: int) -> None:
            with httpx.Client(base_url=base, headers=AUTH, timeout=5) as h:
                for _ in range(n):
                    r = h.post("/retrieve", json={"user_id": user, "budget": 20})
                    if r.status_code == 200:
                        _check_clean(r.json())
                    with lock:
                        statuses.append(r.status_code)

        with ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(worker, 50) for _ in range(4)]
            with httpx.Client(base_url=base, headers=AUTH, timeout=10) as admin:
                while not all(j.done() for j in jobs):
                    swaps.append(admin.post("/admin/reload").status_code)
                    time.sleep(0.02)
            for j in jobs:
                j.result()
    assert len(statuses) == 200
    assert set(statuses) == {200}
    assert len(swaps) >= 2
    assert set(swaps) == {200}


def test_readyz_waits_for_the_bundle(bundle: ServingBundle) -> None:
    release = threading.Event()

    def loader() -> ServingBundle:
        release.wait(5)
        return bundle

    app = create_app(loader, token=None)
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
        release.set()
        deadline = time.time() + 5
        while c.get("/readyz").status_code != 200 and time.time() < deadline:
            time.sleep(0.02)
        assert c.get("/readyz").status_code == 200
