"""Hostile input to ``POST /retrieve``: strict types, int64 bounds, limits at their edges, bodies.

Every refusal is a 422 whose message names the field, the value and the rule;
none is a 500, and no response carries a non-finite JSON number.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from multiembed.data import Vocab
from multiembed.serve import ServeLimits, ServingBundle, create_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
INT64_MAX = 2**63 - 1


def _strict_json(text: str) -> Any:
    """Parse a response, failing on a ``NaN`` or ``Infinity`` literal."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the response"))


@pytest.fixture
def client(bundle: ServingBundle) -> Iterator[TestClient]:
    limits = ServeLimits(max_history=20, max_topics=3, max_budget=100, max_body_bytes=2048)
    app = create_app(lambda: bundle, token=TOKEN, limits=limits, initial=bundle)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _user(bundle: ServingBundle) -> Any:
    return bundle.vocab.users.raw.to_pylist()[3]


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        ('{"user_id": 9223372036854775808}', "user_id", "9223372036854775808: must be an integer"),
        ('{"user_id": -9223372036854775809}', "user_id", "in the int64 range or a string"),
        ('{"history": [1, 9223372036854775808]}', "history[1]", "in the int64 range"),
        ('{"followed_topics": [18446744073709551616]}', "followed_topics[0]", "int64 range"),
        ('{"budget": 9223372036854775808}', "budget", "must be <= 9223372036854775807"),
        ('{"seed": 9223372036854775808}', "seed", "must be <= 9223372036854775807"),
        ('{"budget": NaN}', "budget", "NaN: must be an integer"),
        ('{"budget": Infinity}', "budget", "Infinity: must be an integer"),
        ('{"history": [-Infinity]}', "history[0]", "-Infinity: must be an integer"),
        ('{"user_id": NaN}', "user_id", "NaN: must be an integer"),
        ('{"seed": NaN}', "seed", "NaN: must be an integer"),
        ('{"user_id": true}', "user_id", "true: must be an integer"),
        ('{"budget": true}', "budget", "true: must be an integer"),
        ('{"history": [false]}', "history[0]", "false: must be an integer"),
        ('{"budget": "5"}', "budget", "'5': must be an integer"),
        ('{"budget": 5.0}', "budget", "5.0: must be an integer"),
        ('{"history": [1.5]}', "history[0]", "1.5: must be an integer"),
        ('{"include_topics": 1}', "include_topics", "1: must be true or false"),
        ('{"seed": -1}', "seed", "-1: must be >= 0"),
        ('{"history": null}', "history", "null: must be a list"),
        ('{"history": {"a": 1}}', "history", "an object: must be a list"),
        ('{"colour": [NaN]}', "colour", "a list of 1: unknown field"),
        ("[1, 2]", "body", "must be a JSON object"),
        ('{"budget": 5', "body", "invalid JSON at character"),
    ],
)
def test_hostile_values_are_a_422_naming_the_field(
    client: TestClient, raw: str, field: str, problem: str
) -> None:
    r = client.post("/retrieve", content=raw, headers=AUTH)
    assert r.status_code == 422, r.text
    body = _strict_json(r.text)
    assert body["errors"][0]["field"] == field
    assert problem in body["errors"][0]["problem"]
    assert body["detail"].startswith(f"{field} = ")


def test_every_problem_of_a_body_is_named_once(client: TestClient) -> None:
    raw = '{"user_id": true, "budget": NaN, "history": [1, "x", 2.5], "extra": 1}'
    r = client.post("/retrieve", content=raw, headers=AUTH)
    assert r.status_code == 422
    fields = [e["field"] for e in _strict_json(r.text)["errors"]]
    assert sorted(fields) == ["budget", "extra", "history[2]", "user_id"]


def test_a_non_json_content_type_is_refused_naming_the_body(client: TestClient) -> None:
    headers = {**AUTH, "Content-Type": "text/plain"}
    r = client.post("/retrieve", content='{"budget": 5}', headers=headers)
    assert r.status_code == 422
    assert "sent as Content-Type: application/json" in r.json()["detail"]


def test_int64_bounds_themselves_are_accepted(client: TestClient) -> None:
    r = client.post("/retrieve", json={"user_id": INT64_MAX}, headers=AUTH)
    assert r.status_code == 404, r.text
    assert r.json() == {"detail": f"user_id = {INT64_MAX}: unknown user"}
    body = {"history": [INT64_MAX, -(2**63)], "followed_topics": [INT64_MAX], "budget": 3}
    r = client.post("/retrieve", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert (r.json()["unknown_items"], r.json()["unknown_topics"]) == (2, 1)
    r = client.post("/retrieve", json={"budget": 3, "seed": INT64_MAX}, headers=AUTH)
    assert r.status_code == 200, r.text


def test_a_string_id_for_integer_ids_is_refused_and_the_user_is_echoed_as_stored(
    client: TestClient, bundle: ServingBundle
) -> None:
    user = _user(bundle)
    assert isinstance(user, int)
    r = client.post("/retrieve", json={"user_id": str(user), "budget": 3}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {
            "field": "user_id",
            "problem": f"'{user}': must be an integer in the int64 range "
            "(this data's ids are integers)",
        }
    ]
    r = client.post("/retrieve", json={"history": [1, "7"], "budget": 3}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "history[1]"
    r = client.post("/retrieve", json={"user_id": user, "budget": 3}, headers=AUTH)
    assert r.status_code == 200
    assert r.json()["user_id"] == user


def test_string_ids_take_ints_as_text_and_echo_the_user_as_stored(bundle: ServingBundle) -> None:
    """A data set with string user and item ids (e.g. from a generic CSV)."""
    as_text = [str(u) for u in bundle.vocab.users.raw.to_pylist()]
    items = [str(i) for i in bundle.vocab.items.raw.to_pylist()]
    vocab = dataclasses.replace(
        bundle.vocab,
        users=Vocab(pa.array(as_text, pa.string())),
        items=Vocab(pa.array(items, pa.string())),
    )
    text_bundle = dataclasses.replace(bundle, vocab=vocab)
    app = create_app(lambda: text_bundle, token=None, initial=text_bundle)
    with TestClient(app) as c:
        by_int = c.post("/retrieve", json={"user_id": int(as_text[3]), "budget": 5})
        by_text = c.post("/retrieve", json={"user_id": as_text[3], "budget": 5})
        history = c.post("/retrieve", json={"history": [int(items[0]), items[1]], "budget": 5})
    assert by_int.status_code == by_text.status_code == 200, by_int.text
    assert by_int.json()["user_id"] == by_text.json()["user_id"] == as_text[3]
    assert by_int.json()["candidates"] == by_text.json()["candidates"]
    assert history.status_code == 200
    assert history.json()["unknown_items"] == 0


def test_both_a_user_and_a_history_is_refused(client: TestClient, bundle: ServingBundle) -> None:
    r = client.post("/retrieve", json={"user_id": _user(bundle), "history": [1]}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["detail"] == (
        f"user_id = {_user(bundle)}: give a user_id or a history, not both"
    )


def test_limits_accept_their_bound_and_refuse_one_more(
    client: TestClient, bundle: ServingBundle
) -> None:
    items = bundle.vocab.items.raw.to_pylist()
    topics = bundle.vocab.topics.raw.to_pylist()
    at_max = {"history": items[:20], "followed_topics": topics[:3], "budget": 100}
    r = client.post("/retrieve", json=at_max, headers=AUTH)
    assert r.status_code == 200, r.text
    assert 0 < len(r.json()["candidates"]["item_id"]) <= 100
    cases = [
        ({"history": items[:21], "budget": 5}, "history = 21 ids: at most 20 allowed"),
        ({"followed_topics": topics[:4]}, "followed_topics = 4 ids: at most 3 allowed"),
        ({"budget": 101}, "budget = 101: must be an int in [1, 100]"),
        ({"budget": 0}, "budget = 0: must be an int in [1, 100]"),
        ({"budget": -(2**63)}, f"budget = {-(2**63)}: must be an int in [1, 100]"),
    ]
    for body, detail in cases:
        r = client.post("/retrieve", json=body, headers=AUTH)
        assert (r.status_code, r.json()["detail"]) == (422, detail)
    r = client.post("/retrieve", json={"history": items[:21], "budget": 0}, headers=AUTH)
    assert [e["field"] for e in r.json()["errors"]] == ["budget", "history"]


# -- the body limits, driven through the ASGI interface chunk by chunk ---------------


def _call(
    app: FastAPI, chunks: list[bytes], *, pause_s: float = 0.0, length: int | None = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    """POST /retrieve with the body sent as `chunks` (one ASGI message each).

    `pause_s` waits before each chunk after the first; `length` sets a
    Content-Length header (none by default: a streamed upload).
    """
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/retrieve",
        "raw_path": b"/retrieve",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = list(chunks)
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        if not sent:
            await asyncio.sleep(3600)  # a client that sends nothing more
        if pause_s and len(sent) < len(chunks):
            await asyncio.sleep(pause_s)
        chunk = sent.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(sent)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = dict(message["headers"])
        else:
            out["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return out["status"], out["headers"], out["body"]


def _app(bundle: ServingBundle, **limits: Any) -> FastAPI:
    return create_app(lambda: bundle, token=None, limits=ServeLimits(**limits), initial=bundle)


def _padded(size: int) -> bytes:
    """A valid body of exactly `size` bytes: ``{"budget": 3}`` padded with spaces."""
    body = b'{"budget": 3}'
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_a_streamed_body_is_limited_in_total_not_per_chunk(bundle: ServingBundle) -> None:
    app = _app(bundle, max_body_bytes=1000)
    body = _padded(1001)
    chunks = [body[i : i + 300] for i in range(0, len(body), 300)]  # each well under 1000
    status, headers, answer = _call(app, chunks)
    assert status == 413
    assert json.loads(answer) == {"detail": "request body over 1000 bytes"}
    assert headers[b"connection"] == b"close"
    body = _padded(1000)
    status, _, answer = _call(app, [body[i : i + 300] for i in range(0, len(body), 300)])
    assert status == 200, answer
    assert len(json.loads(answer)["candidates"]["item_id"]) == 3


def test_content_length_over_the_limit_is_refused_unread(bundle: ServingBundle) -> None:
    app = _app(bundle, max_body_bytes=1000)
    status, _, _ = _call(app, [], length=1001)  # receive would wait an hour if called
    assert status == 413
    status, _, _ = _call(app, [_padded(1000)], length=1000)
    assert status == 200


def test_a_body_slower_than_the_timeout_is_a_408(bundle: ServingBundle) -> None:
    app = _app(bundle, body_timeout_s=0.2)
    t0 = time.perf_counter()
    status, headers, answer = _call(app, [b'{"bud', b'get": 3}'], pause_s=5)
    assert 0.2 <= time.perf_counter() - t0 < 2
    assert status == 408
    assert json.loads(answer) == {"detail": "request body not received within 0.2 s"}
    assert headers[b"connection"] == b"close"
    status, _, _ = _call(app, [b'{"bud', b'get": 3}'], pause_s=0.01)
    assert status == 200
