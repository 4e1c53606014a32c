"""The bundle's user histories: each user's last L engagements, recomputed row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from multiembed.data.schema import ENGAGEMENTS_FILE, POSITIVE_ACTIONS
from multiembed.serve import ServingBundle


def test_histories_are_each_users_last_engagements(
    bundle: ServingBundle, served_run: tuple[Path, Path]
) -> None:
    _, data = served_run
    h = bundle.histories
    assert h is not None
    n_users, length = h.history.shape
    rows = pq.read_table(data / ENGAGEMENTS_FILE).to_pylist()
    per_user: dict[int, list[tuple[int, int, int, bool]]] = {}
    for i, r in enumerate(rows):
        if 0 <= r["user_id"] < n_users and 0 <= r["item_id"] < bundle.n_items:
            ok = r["action"] in POSITIVE_ACTIONS and bool(bundle.item_valid[r["item_id"]])
            per_user.setdefault(r["user_id"], []).append((r["ts"], i, r["item_id"], ok))
    want = np.full((n_users, length), -1, dtype=np.int64)
    want_valid = np.zeros((n_users, length), dtype=bool)
    for u, events in per_user.items():
        last = sorted(events)[-length:]  # by time, then row
        for j, (_, _, item, ok) in enumerate(last):
            want[u, length - len(last) + j] = item
            want_valid[u, length - len(last) + j] = ok
    assert (want >= 0).any()
    np.testing.assert_array_equal(h.history, want)
    np.testing.assert_array_equal(h.history_valid, want_valid)
