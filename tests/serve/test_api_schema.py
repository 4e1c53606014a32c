"""The HTTP API against its own OpenAPI schema, under generated and hostile requests.

Request bodies are drawn from the app's OpenAPI schema (`from_schema`), then
some are damaged: a field or a list element replaced by hostile junk (ints past
int64, floats, ``NaN`` and ``Infinity`` written as JSON literals, bools,
strings, nulls, nested lists and objects), fields dropped or added, the text
truncated or replaced, the body padded past the size limit, the content type
or the token wrong. Every answer must:

- never be a 500, and carry a status the schema declares for that path and method;
- be JSON without a ``NaN`` or ``Infinity`` number, matching the schema declared
  for that status (`conforms`: a small JSON-schema check of the OpenAPI subset);
- for a 200 from ``/retrieve``: no ``-1`` id, rank or list index.

At least 1,000 requests per run, derandomised, in-process (TestClient).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multiembed.serve import ServeLimits, ServingBundle, create_app

TOKEN = "s3cret-token"
LIMITS = ServeLimits(max_history=20, max_topics=5, max_budget=60, max_body_bytes=4096)
CASES = 1200
INT64 = (-(2**63), 2**63 - 1)


@pytest.fixture(scope="module")
def client(bundle: ServingBundle) -> Iterator[TestClient]:
    app = create_app(lambda: bundle, token=TOKEN, limits=LIMITS, initial=bundle)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


# -- requests generated from the schema --------------------------------------------


def from_schema(schema: dict[str, Any], spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid under `schema` (the OpenAPI subset the app uses; anything else fails)."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, spec) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "integer":
        lo, hi = INT64 if schema.get("format") == "int64" else (-(2**31), 2**31 - 1)
        lo = int(schema.get("minimum", lo))
        edges = [v for v in (lo, hi, -1, 0, 1, 2) if lo <= v <= hi]
        # mostly small ints: the raw ids of the data and useful budgets live there
        small = st.integers(max(lo, 0), min(hi, 1600))
        return st.one_of(small, small, st.integers(lo, hi), st.sampled_from(edges))
    if kind == "string":
        return st.one_of(st.text(max_size=8), st.integers(0, 1600).map(str))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema["items"], spec), max_size=24)
    if kind == "object" and "properties" in schema:
        props = {k: from_schema(v, spec) for k, v in schema["properties"].items()}
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: v for k, v in props.items() if k in required},
            optional={k: v for k, v in props.items() if k not in required},
        )
    raise AssertionError(f"schema not covered by the generator: {schema}")


NAN, INF = float("nan"), float("inf")
_SCALARS = st.one_of(
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, NAN, INF, -INF, True, False, None]),
    st.sampled_from([-1, 0, 1.5, 2.0, -0.0, 1e308, "", "5", "NaN", "\x00", "\u00e9\U0001f600"]),
    st.floats(),
    st.integers(),
    st.text(max_size=10),
)
JUNK = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)
CONTENT_TYPES = [
    "text/plain",
    None,
    "application/x-www-form-urlencoded",
    "application/problem+json",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-8",
]
AUTHS = [None, "Bearer nope", f"Basic {TOKEN}", "Bearer ", f"bearer {TOKEN}"]


@st.composite
def damaged(draw: st.DrawFn, body: dict[str, Any]) -> bytes:
    """The JSON text of `body` after one or more kinds of damage (or none)."""
    how = draw(st.sampled_from(["none", "field", "element", "extra", "raw", "huge", "deep"]))
    if how == "field":
        body[draw(st.sampled_from(sorted(LIMITS_FIELDS)))] = draw(JUNK)
    elif how == "element":
        field = draw(st.sampled_from(["history", "followed_topics"]))
        values = list(body.get(field) or [0])
        values[draw(st.integers(0, len(values) - 1))] = draw(JUNK)
        body[field] = values
    elif how == "extra":
        body[draw(st.text(min_size=1, max_size=8))] = draw(JUNK)
    elif how == "raw":
        return draw(
            st.one_of(
                st.binary(max_size=40),
                JUNK.map(lambda v: json.dumps(v).encode()),
                st.just(json.dumps(body).encode()).map(lambda t: t[: len(t) // 2]),
            )
        )
    elif how == "huge":
        text = json.dumps(body).encode()
        return text[:-1] + b" " * LIMITS.max_body_bytes + b"}"
    elif how == "deep":
        depth = draw(st.integers(1, 2000))
        return b'{"history": ' + b"[" * depth + b"]" * depth + b"}"
    return json.dumps(body).encode()  # NaN and Infinity are written as literals


LIMITS_FIELDS = ("user_id", "history", "followed_topics", "budget", "seed", "include_topics")


@st.composite
def requests(draw: st.DrawFn, spec: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes]:
    """``(method, path, headers, body)``: mostly ``POST /retrieve``, any endpoint sometimes."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    if draw(st.integers(0, 9)) == 0:
        auth = draw(st.sampled_from(AUTHS))
        headers.pop("Authorization")
        if auth is not None:
            headers["Authorization"] = auth
    if draw(st.integers(0, 9)) == 0:
        kind = draw(st.sampled_from(CONTENT_TYPES))
        headers.pop("Content-Type")
        if kind is not None:
            headers["Content-Type"] = kind
    query = draw(st.sampled_from(["", "", "", f"?token={TOKEN}", "?budget=5&x"]))
    if draw(st.integers(0, 11)) == 0:
        method, path = draw(
            st.sampled_from(
                [
                    ("get", "/healthz"),
                    ("get", "/readyz"),
                    ("get", "/version"),
                    ("post", "/admin/reload"),
                ]
            )
        )
        return method, path + query, headers, draw(st.sampled_from([b"", b"{}", b"[NaN]"]))
    schema = spec["paths"]["/retrieve"]["post"]["requestBody"]["content"]["application/json"]
    body = draw(from_schema(schema["schema"], spec))
    if draw(st.booleans()):  # within the limits, so that the damage reaches the retrieval
        body = _within_limits(body)
    return "post", "/retrieve" + query, headers, draw(damaged(body))


def _within_limits(body: dict[str, Any]) -> dict[str, Any]:
    """`body` cut to the limits: budget in range, short lists, a user or a history."""
    body = dict(body)
    if isinstance(body.get("budget"), int):
        body["budget"] = 1 + body["budget"] % LIMITS.max_budget
    body["history"] = body.get("history", [])[: LIMITS.max_history]
    body["followed_topics"] = body.get("followed_topics", [])[: LIMITS.max_topics]
    if body.get("user_id") is not None:
        body.pop("history")
        body.pop("followed_topics")
    return body


# -- the answers against the schema ---------------------------------------------------


def conforms(value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str = "$") -> None:
    """Assert that `value` matches `schema` (types, required and unknown properties)."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                conforms(value, option, spec, where)
                return
            except AssertionError:
                continue
        raise AssertionError(f"{where}: {value!r} matches no option of {schema['anyOf']}")
    kind = schema.get("type")
    if kind is None:
        return
    checks = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    assert checks[kind](value), f"{where}: {value!r} is not {kind}"
    if kind == "array":
        for i, item in enumerate(value):
            conforms(item, schema.get("items", {}), spec, f"{where}[{i}]")
    if kind == "object":
        props = schema.get("properties", {})
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{where}: missing {sorted(missing)}"
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                conforms(item, props[key], spec, f"{where}.{key}")
            else:
                assert extra is not False, f"{where}: undocumented property {key!r}"
                if isinstance(extra, dict):
                    conforms(item, extra, spec, f"{where}.{key}")


def _check_answer(
    spec: dict[str, Any], method: str, path: str, status: int, headers: Any, text: str
) -> None:
    declared = spec["paths"][path.split("?")[0]][method]["responses"]
    assert status != 500, text
    assert str(status) in declared, f"{method} {path}: {status} is not documented: {text}"
    assert headers["content-type"].startswith("application/json"), headers
    body = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the answer"))
    conforms(body, declared[str(status)]["content"]["application/json"]["schema"], spec)
    if path.startswith("/retrieve") and status == 200:
        cand, also = body["candidates"], body["also_found_by"]
        columns = [cand["list"], cand["rank"], also["candidate"], also["list"], also["rank"]]
        assert all(min(c, default=0) >= 0 for c in columns), body
        assert -1 not in cand["item_id"]
        assert all(i < len(body["lists"]) for i in cand["list"] + also["list"])


def test_openapi_declares_every_status_with_its_body(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    op = spec["paths"]["/retrieve"]["post"]
    responses = op["responses"]
    assert sorted(responses) == sorted(
        ["200", "400", "401", "404", "408", "413", "422", "503", "504"]
    )

    def ref(status: str) -> str:
        return str(responses[status]["content"]["application/json"]["schema"]["$ref"])

    assert ref("200").endswith("/RetrieveResponse")
    assert ref("422").endswith("/InputErrorBody")
    assert {ref(s) for s in ("400", "401", "404", "408", "413", "503", "504")} == {
        "#/components/schemas/ErrorBody"
    }
    assert "HTTPValidationError" not in schemas
    body = schemas["RetrieveBody"]
    assert body["additionalProperties"] is False
    assert body["properties"]["budget"]["anyOf"][0] == {"type": "integer", "format": "int64"}
    assert set(schemas["RetrieveResponse"]["required"]) >= {"candidates", "lists", "user_id"}
    assert sorted(spec["paths"]["/admin/reload"]["post"]["responses"]) == sorted(
        ["200", "401", "408", "409", "413"]
    )
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]


def test_generated_and_hostile_requests_get_documented_answers(
    client: TestClient, spec: dict[str, Any]
) -> None:
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=CASES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests(spec))
    def one(request: tuple[str, str, dict[str, str], bytes]) -> None:
        method, path, headers, content = request
        r = client.request(method.upper(), path, headers=headers, content=content)
        statuses[r.status_code] += 1
        _check_answer(spec, method, path, r.status_code, r.headers, r.text)

    one()
    assert sum(statuses.values()) >= 1000
    assert {200, 400, 401, 404, 413, 422} <= set(statuses), statuses
    assert statuses[200] >= 150, statuses
