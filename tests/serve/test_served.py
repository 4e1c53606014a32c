"""`Served` columns against a per-candidate reference (the plan's `found_by` loop)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from multiembed.serve import RetrieveRequest, ServingBundle, create_app, retrieve


def _user(bundle: ServingBundle, n: int) -> Any:
    return bundle.vocab.users.raw.to_pylist()[n]


def _finders(body: dict[str, Any]) -> list[list[tuple[int, int, float]]]:
    """Every ``(list, rank, score)`` that found each candidate, rebuilt from the columns."""
    cand, also = body["candidates"], body["also_found_by"]
    out = [[(s, r, v)] for s, r, v in zip(cand["list"], cand["rank"], cand["score"], strict=True)]
    for n, s, r, v in zip(
        also["candidate"], also["list"], also["rank"], also["score"], strict=True
    ):
        out[n].append((s, r, v))
    return [sorted(f) for f in out]


@pytest.mark.parametrize("user", [3, 7, 11])
def test_columns_carry_every_finder_of_every_candidate(bundle: ServingBundle, user: int) -> None:
    served = retrieve(bundle, RetrieveRequest(user_id=_user(bundle, user), budget=200))
    c = served.retrieval.candidates
    body = json.loads(json.dumps(served.as_json(), default=lambda a: a.tolist()))
    assert body["candidates"]["item_id"] == bundle.vocab.items.decode(c.ids).to_pylist()
    reference = [sorted((o.source, o.rank, o.score) for o in c.found_by(n)) for n in range(len(c))]
    assert _finders(body) == reference
    assert len(body["also_found_by"]["list"]) == c.hit_candidate.size - len(c)
    assert any(len(f) > 1 for f in reference), "no deduplicated item: the test is vacuous"


def test_rows_match_the_columns(bundle: ServingBundle) -> None:
    request = RetrieveRequest(user_id=_user(bundle, 3), budget=60, include_topics=True)
    served = retrieve(bundle, request)
    body = json.loads(json.dumps(served.as_json(), default=lambda a: a.tolist()))
    rows = served.rows()
    labels = [label for label, _, _, _ in served.lists]
    names = body["topics"]["name"]
    assert len(rows) == len(served) == len(body["candidates"]["item_id"])
    for n, row in enumerate(rows):
        assert row.item_id == body["candidates"]["item_id"][n]
        assert row.source == labels[body["candidates"]["list"][n]]
        assert row.rank == body["candidates"]["rank"][n]
        assert row.score == pytest.approx(body["candidates"]["score"][n])
        assert sorted((labels.index(s), r) for s, r, _ in row.found_by) == [
            (s, r) for s, r, _ in _finders(body)[n]
        ]
        assert list(row.topics) == [names[k] for k in body["candidates"]["topics"][n]]
    assert retrieve(bundle, RetrieveRequest(user_id=_user(bundle, 3), budget=5)).topics is None


def test_http_body_equals_the_in_process_columns(bundle: ServingBundle) -> None:
    """orjson's NumPy serialisation gives the same values as the arrays (float32 scores)."""
    app = create_app(lambda: bundle, token=None, initial=bundle)
    request = {"user_id": _user(bundle, 5), "budget": 300}
    with TestClient(app) as client:
        r = client.post("/retrieve", json=request)
    assert r.status_code == 200, r.text
    body = json.loads(r.text, parse_constant=lambda c: pytest.fail(f"{c} in the body"))
    served = retrieve(bundle, RetrieveRequest(user_id=request["user_id"], budget=300))
    expected = json.loads(json.dumps(served.as_json(), default=lambda a: a.tolist()))
    for part in ("candidates", "also_found_by"):
        for key, column in expected[part].items():
            got = body[part][key]
            if key == "score":
                assert all(
                    math.isclose(a, b, rel_tol=1e-6) for a, b in zip(got, column, strict=True)
                )
            else:
                assert got == column, (part, key)
    assert body["lists"] == expected["lists"]
