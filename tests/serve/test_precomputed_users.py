"""A known user's implicit embeddings come from the bundle's table, computed once at build time."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from multiembed.serve import RetrieveRequest, ServingBundle, retrieve


def _tower_one_by_one(bundle: ServingBundle, user: int) -> Any:
    """The user tower on one history, ``[1, L]`` in, as a request without the table runs it."""
    h = bundle.histories
    assert h is not None
    followed = torch.as_tensor(h.followed[user][None])
    uses_followed = bundle.model.user_tower.followed_table is not None
    with torch.no_grad():
        return bundle.model.embed_users(
            torch.as_tensor(h.history[user][None]),
            torch.as_tensor(h.history_valid[user][None]),
            followed=followed if uses_followed else None,
        )


def test_the_table_holds_each_users_tower_output(bundle: ServingBundle) -> None:
    table, h = bundle.user_queries, bundle.histories
    assert table is not None
    assert h is not None
    assert table.embeddings.shape[0] == h.n_users == len(bundle.vocab.users)
    for user in range(0, h.n_users, max(1, h.n_users // 25)):
        one = _tower_one_by_one(bundle, user)
        np.testing.assert_allclose(table.embeddings[user], one.embeddings[0].numpy(), atol=1e-5)
        np.testing.assert_array_equal(table.slot_mask[user], one.slot_mask[0].numpy())
        np.testing.assert_allclose(table.importance[user], one.importance[0].numpy(), atol=1e-5)


def test_a_known_user_skips_the_tower_and_a_body_history_runs_it(
    bundle: ServingBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = bundle.vocab.users.raw.to_pylist()[3]
    before = retrieve(bundle, RetrieveRequest(user_id=user, budget=50))
    calls: list[int] = []
    inner = bundle.model.embed_users

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(bundle.model, "embed_users", counted)
    served = retrieve(bundle, RetrieveRequest(user_id=user, budget=50))
    assert calls == []  # from the table
    assert served.item_ids == before.item_ids
    without = retrieve(replace(bundle, user_queries=None), RetrieveRequest(user_id=user, budget=50))
    assert calls == [1]  # no table: the tower ran
    assert len(without) == 50
    history = tuple(bundle.vocab.items.raw.to_pylist()[:8])
    retrieve(bundle, RetrieveRequest(history=history, budget=50))
    assert calls == [1, 1]  # a body history always runs the tower
