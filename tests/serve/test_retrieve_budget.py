"""`budget` is the number of candidates returned: in process, over HTTP and from the CLI.

A user's lists often find the same items (the tiny world's DCM embeddings are
close); deduplication used to leave the answer short (8 of 10 over HTTP, 10 of
20 from the CLI). The plan now searches short lists deeper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from multiembed.cli.main import app
from multiembed.retrieve import PlanSettings
from multiembed.serve import RetrieveRequest, ServingBundle, create_app, retrieve


def _users(bundle: ServingBundle, n: int) -> list[Any]:
    return bundle.vocab.users.raw.to_pylist()[:n]


@pytest.mark.parametrize("budget", [10, 20, 50])
def test_every_request_gets_its_budget(bundle: ServingBundle, budget: int) -> None:
    # a shallow first search, so that lists run dry and the refill is what fills them
    settings = PlanSettings(total=budget, k_ex=bundle.k_ex, overfetch=0.2)
    refilled = 0
    for user in _users(bundle, 25):
        served = retrieve(bundle, RetrieveRequest(user_id=user, budget=budget), settings=settings)
        assert len(served) == budget, user
        assert len(set(served.item_ids)) == budget
        refilled += "refill" in served.stages_ms
    assert refilled > 0, "no request needed a refill: the test is vacuous"


def test_a_body_history_gets_its_budget(bundle: ServingBundle) -> None:
    history = tuple(bundle.vocab.items.raw.to_pylist()[:8])
    topics = tuple(bundle.vocab.topics.raw.to_pylist()[:3])
    served = retrieve(bundle, RetrieveRequest(history=history, followed_topics=topics, budget=30))
    assert len(served) == 30


def test_the_filter_off_fills_the_budget_from_the_whole_index(bundle: ServingBundle) -> None:
    user = _users(bundle, 4)[3]
    settings = PlanSettings(total=25, k_ex=bundle.k_ex, relevance_filter=False)
    served = retrieve(bundle, RetrieveRequest(user_id=user), settings=settings)
    assert len(served) == 25
    assert all(x == 0 for _, _, _, x in served.lists)  # nothing filtered


def test_http_returns_the_budget(bundle: ServingBundle) -> None:
    client_app = create_app(lambda: bundle, token=None, initial=bundle)
    with TestClient(client_app) as client:
        for user in _users(bundle, 10):
            r = client.post("/retrieve", json={"user_id": user, "budget": 10})
            assert r.status_code == 200, r.text
            assert len(r.json()["candidates"]["item_id"]) == 10, user


def test_cli_returns_the_budget(served_run: tuple[Path, Path], bundle: ServingBundle) -> None:
    run, data = served_run
    for user in _users(bundle, 4):
        result = CliRunner().invoke(
            app,
            ["retrieve", str(run), "--data", str(data), "--user", str(user), "--budget", "20"],
            env={"COLUMNS": "200"},
        )
        assert result.exit_code == 0, result.output
        assert "20 candidates" in result.output
