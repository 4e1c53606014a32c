"""build_examples against a per-example Python reference; no leakage; store, dataset and loader."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multiembed._files import open_sealed_json, seal_json
from multiembed.data.examples import (
    PAD,
    EpochBatchSampler,
    ExampleDataset,
    ExampleStore,
    build_examples,
    make_loader,
)
from multiembed.data.schema import (
    ENGAGEMENTS_SCHEMA,
    NEGATIVE_ACTIONS,
    POSITIVE_ACTIONS,
    USER_TOPICS_SCHEMA,
    items_schema,
)
from multiembed.data.split import Role, comirec_split
from multiembed.errors import DataError, InputFileError

PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ARRAY_NAMES = (
    "user",
    "event",
    "target",
    "target_ts",
    "source_topic",
    "history",
    "history_valid",
    "history_negative",
    "history_ts",
    "followed",
)


def engagements(rows: list[tuple[int, int, int, str, int | None]]) -> pa.Table:
    """Canonical engagements from (user, item, ts, action, source_topic) rows."""
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 5
    return pa.Table.from_pydict(
        dict(zip(ENGAGEMENTS_SCHEMA.names, map(list, cols), strict=True)),
        schema=ENGAGEMENTS_SCHEMA,
    )


def follows(rows: list[tuple[int, int, int, int | None]]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 4
    return pa.Table.from_pydict(
        dict(zip(USER_TOPICS_SCHEMA.names, map(list, cols), strict=True)), schema=USER_TOPICS_SCHEMA
    )


def items(valid: dict[int, bool]) -> pa.Table:
    ids = sorted(valid)
    return pa.Table.from_pydict(
        {"item_id": ids, "topics": [[] for _ in ids], "valid": [valid[i] for i in ids]},
        schema=items_schema(None, 0),
    )


def naive_examples(
    rows: list[tuple[int, int, int, str, int | None]],
    *,
    seq_len: int,
    max_topics: int,
    targets: list[bool] | None = None,
    history: list[bool] | None = None,
    valid_items: dict[int, bool] | None = None,
    follow_rows: list[tuple[int, int, int, int | None]] = (),  # type: ignore[assignment]
) -> dict[str, list[Any]]:
    """The documented contract, one example and one slot at a time."""
    n_rows = len(rows)
    targets = targets if targets is not None else [True] * n_rows
    history = history if history is not None else [True] * n_rows
    out: dict[str, list[Any]] = {name: [] for name in ARRAY_NAMES}
    for r in sorted(range(n_rows), key=lambda i: (rows[i][0], rows[i][2], i)):
        user, item, ts, action, topic = rows[r]
        if not (targets[r] and action in POSITIVE_ACTIONS):
            continue
        before = (
            sorted(
                (j for j in range(n_rows) if rows[j][0] == user and rows[j][2] < ts and history[j]),
                key=lambda j: (rows[j][2], j),
            )[-seq_len:]
            if seq_len
            else []
        )
        pad = seq_len - len(before)

        def is_valid(j: int) -> bool:
            ok = valid_items is None or valid_items.get(rows[j][1], False)
            return ok and rows[j][3] in POSITIVE_ACTIONS

        out["history"].append([PAD] * pad + [rows[j][1] for j in before])
        out["history_ts"].append([PAD] * pad + [rows[j][2] for j in before])
        out["history_valid"].append([False] * pad + [is_valid(j) for j in before])
        out["history_negative"].append(
            [False] * pad + [rows[j][3] in NEGATIVE_ACTIONS for j in before]
        )
        active = sorted(
            (
                (-fa, t)
                for (u, t, fa, ua) in follow_rows
                if u == user and fa <= ts and (ua is None or ua > ts)
            ),
        )
        topics: list[int] = []
        for _, t in active:
            if t not in topics:
                topics.append(t)
        topics = topics[:max_topics]
        out["followed"].append(topics + [PAD] * (max_topics - len(topics)))
        out["user"].append(user)
        out["event"].append(r)
        out["target"].append(item)
        out["target_ts"].append(ts)
        out["source_topic"].append(PAD if topic is None else topic)
    return out


def assert_store_equals(store: ExampleStore, expected: dict[str, list[Any]]) -> None:
    assert len(store) == len(expected["target"])
    for name in ARRAY_NAMES:
        array = getattr(store, name)
        if array is None:
            continue
        assert array.tolist() == expected[name], name


# --- a hand-built case -----------------------------------------------------------------------


HAND_ROWS: list[tuple[int, int, int, str, int | None]] = [
    (1, 20, 50, "click", None),  # row 0: other user, first event
    (0, 10, 100, "click", 3),  # row 1
    (0, 11, 200, "hide", None),  # row 2: negative, not a target
    (0, 12, 300, "save", None),  # row 3: tie with row 4
    (0, 13, 300, "click", 5),  # row 4: tie with row 3
    (0, 14, 400, "click", None),  # row 5: item 14 is invalid
    (0, 15, 500, "view", 2),  # row 6
]
HAND_FOLLOWS = [
    (0, 7, 100, None),  # followed at the first event, never unfollowed
    (0, 8, 250, 400),  # active on (250, 400): seen at 300, not at 400
    (0, 9, 300, None),  # followed exactly at 300: active at 300
    (0, 7, 90, None),  # duplicate record of topic 7
    (1, 4, 0, None),
]


def test_hand_built_examples(tmp_path: Path) -> None:
    store = build_examples(
        engagements(HAND_ROWS),
        tmp_path / "ex",
        seq_len=3,
        max_topics=2,
        items=items({10: True, 11: True, 12: True, 13: True, 14: False, 15: True}),
        user_topics=follows(HAND_FOLLOWS),
        with_history_ts=True,
    )
    # ordered by user then time: user 0's five positive events, then user 1's one
    assert store.event.tolist() == [1, 3, 4, 5, 6, 0]
    assert store.target.tolist() == [10, 12, 13, 14, 15, 20]
    assert store.source_topic.tolist() == [3, -1, 5, -1, 2, -1]
    # rows 3 and 4 share ts 300: neither sees the other
    assert store.history.tolist() == [
        [-1, -1, -1],
        [-1, 10, 11],
        [-1, 10, 11],
        [11, 12, 13],
        [12, 13, 14],
        [-1, -1, -1],
    ]
    assert store.history_valid.tolist() == [
        [False, False, False],
        [False, True, False],  # hide is not valid
        [False, True, False],
        [False, True, True],
        [True, True, False],  # item 14 is invalid
        [False, False, False],
    ]
    assert store.history_negative[1].tolist() == [False, False, True]
    assert store.history_ts[4].tolist() == [300, 300, 400]  # type: ignore[index]
    # at 100: {7}; at 300: 9 (300) before 8 (250) before 7; at 400: 8 unfollowed
    assert store.followed.tolist() == [[7, -1], [9, 8], [9, 8], [9, 7], [9, 7], [4, -1]]
    assert store.meta["n_non_positive_targets"] == 1
    assert store.meta["n_empty_history"] == 2
    assert store.meta["n_items_missing_from_items_table"] == 1  # item 20
    assert store.meta["alignment"] == "right"
    assert store.meta["pad"] == -1


def test_hand_built_matches_naive_reference(tmp_path: Path) -> None:
    valid = {10: True, 11: True, 12: True, 13: True, 14: False, 15: True}
    store = build_examples(
        engagements(HAND_ROWS),
        tmp_path / "ex",
        seq_len=3,
        max_topics=2,
        items=items(valid),
        user_topics=follows(HAND_FOLLOWS),
        with_history_ts=True,
    )
    expected = naive_examples(
        HAND_ROWS, seq_len=3, max_topics=2, valid_items=valid, follow_rows=HAND_FOLLOWS
    )
    assert_store_equals(store, expected)


# --- the vectorised builder against the reference ---------------------------------------------

ACTIONS = ["click", "save", "view", "hide", "skip"]
event_rows = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.integers(0, 9),
        st.integers(0, 8),
        st.sampled_from(ACTIONS),
        st.none() | st.integers(0, 3),
    ),
    min_size=1,
    max_size=40,
)
follow_rows = st.lists(
    st.tuples(
        st.integers(0, 3), st.integers(0, 5), st.integers(0, 8), st.none() | st.integers(0, 12)
    ),
    max_size=16,
)


@PROPERTY
@given(
    rows=event_rows,
    fol=follow_rows,
    data=st.data(),
    seq_len=st.integers(1, 5),
    max_topics=st.integers(1, 3),
    chunk_size=st.sampled_from([1, 3, 1000]),
)
def test_builder_matches_naive_reference(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, int, int, str, int | None]],
    fol: list[tuple[int, int, int, int | None]],
    data: st.DataObject,
    seq_len: int,
    max_topics: int,
    chunk_size: int,
) -> None:
    n = len(rows)
    targets = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    history = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    valid = data.draw(st.dictionaries(st.integers(0, 9), st.booleans()))
    expected = naive_examples(
        rows,
        seq_len=seq_len,
        max_topics=max_topics,
        targets=targets,
        history=history,
        valid_items=valid,
        follow_rows=fol,
    )
    out = tmp_path_factory.mktemp("ex") / "ex"
    kwargs: dict[str, Any] = {
        "seq_len": seq_len,
        "max_topics": max_topics,
        "targets": np.array(targets),
        "history": np.array(history),
        "items": items(valid),
        "user_topics": follows(fol),
        "with_history_ts": True,
        "chunk_size": chunk_size,
    }
    if not expected["target"]:
        with pytest.raises(DataError, match="no examples"):
            build_examples(engagements(rows), out, **kwargs)
        assert not out.exists()
        return
    assert_store_equals(build_examples(engagements(rows), out, **kwargs), expected)


@PROPERTY
@given(
    times=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 30)), min_size=1, max_size=80),
    seq_len=st.integers(1, 8),
)
def test_no_example_sees_its_own_or_a_later_event(
    tmp_path_factory: pytest.TempPathFactory, times: list[tuple[int, int]], seq_len: int
) -> None:
    """Every event has its own item (item = row), so items identify events by position."""
    rows = [(u, row, t, "click", None) for row, (u, t) in enumerate(times)]
    store = build_examples(
        engagements(rows),
        tmp_path_factory.mktemp("ex") / "ex",
        seq_len=seq_len,
        max_topics=1,
        with_history_ts=True,
    )
    assert len(store) == len(rows)
    user = np.array([u for u, _ in times])
    ts = np.array([t for _, t in times])
    for i in range(len(store)):
        hist, target = store.history[i], int(store.target[i])
        real = hist != PAD
        assert target == int(store.event[i])  # the target is the event itself
        assert target not in hist.tolist()  # never its own event
        assert np.all(store.history_ts[i][real] < store.target_ts[i])  # type: ignore[index]
        assert np.all(ts[hist[real]] < ts[target])  # by position: strictly earlier events
        assert np.all(user[hist[real]] == user[target])  # and only the same user's
        assert np.all(np.diff(ts[hist[real]]) >= 0)  # oldest first, right-aligned
        assert np.all(real[np.argmax(real) :]) if real.any() else True
        # exactly the last L strictly earlier events of the user
        earlier = np.flatnonzero((user == user[target]) & (ts < ts[target]))
        earlier = earlier[np.lexsort((earlier, ts[earlier]))][-seq_len:]
        assert hist[real].tolist() == earlier.tolist()


def test_comirec_held_out_targets_see_only_history_events(tmp_path: Path) -> None:
    users = np.repeat(np.arange(10), 10)
    ts = np.tile(np.arange(10), 10)
    rows = [
        (int(u), int(k), int(t), "click", None)
        for k, (u, t) in enumerate(zip(users, ts, strict=True))
    ]
    roles = comirec_split(users, ts, seed=0)
    is_target = np.isin(roles, [Role.VALID_TARGET, Role.TEST_TARGET])
    store = build_examples(
        engagements(rows), tmp_path / "ex", seq_len=20, max_topics=1,
        targets=is_target, history=~is_target,
    )  # fmt: skip
    assert len(store) == np.count_nonzero(is_target) == 2 * 2  # 2 held-out users, 2 targets each
    for i in range(len(store)):
        hist = store.history[i][store.history[i] != PAD]
        assert hist.size == 8
        assert not np.any(is_target[hist])


# --- store ----------------------------------------------------------------------------------


def small_store(path: Path, **kwargs: Any) -> ExampleStore:
    rows = [(u, 10 * u + k, k, "click", None) for u in range(3) for k in range(5)]
    return build_examples(engagements(rows), path, seq_len=3, max_topics=2, **kwargs)


def test_store_is_read_only_memory_mapped_npy(tmp_path: Path) -> None:
    store = small_store(tmp_path / "ex")
    names = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert names == sorted([f"{n}.npy" for n in ARRAY_NAMES if n != "history_ts"] + ["meta.json"])
    assert isinstance(store.history, np.memmap)
    assert not store.history.flags.writeable
    assert store.history.dtype == np.int64
    assert store.history.shape == (15, 3)
    assert store.history_valid.dtype == np.bool_
    assert store.followed.shape == (15, 2)
    assert store.history_ts is None
    assert list(tmp_path.iterdir()) == [tmp_path / "ex"]  # no temporary left behind
    reopened = pickle.loads(pickle.dumps(store))
    assert reopened.path == store.path
    assert np.array_equal(reopened.history, store.history)


def test_existing_directory_needs_overwrite(tmp_path: Path) -> None:
    small_store(tmp_path / "ex")
    with pytest.raises(FileExistsError, match="exists"):
        small_store(tmp_path / "ex")
    store = small_store(tmp_path / "ex", overwrite=True, with_history_ts=True)
    assert len(small_store(tmp_path / "new" / "deeper" / "ex")) == 15  # parents are created
    assert store.history_ts is not None


def test_open_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"meta\.json: missing"):
        ExampleStore.open(tmp_path / "nothing")
    small_store(tmp_path / "ex")
    np.save(tmp_path / "ex" / "target.npy", np.zeros(4, dtype=np.int64))
    with pytest.raises(
        DataError, match=r"target.npy: expected int64 of shape \[15\], got int64 of shape \[4\]"
    ):
        ExampleStore.open(tmp_path / "ex")
    (tmp_path / "ex" / "followed.npy").unlink()
    meta = open_sealed_json((tmp_path / "ex" / "meta.json").read_bytes())
    (tmp_path / "ex" / "meta.json").write_bytes(seal_json({**meta, "format_version": 99}))
    with pytest.raises(InputFileError, match="format_version 99; expected format_version 2"):
        ExampleStore.open(tmp_path / "ex")


def test_build_errors_say_expected_and_got(tmp_path: Path) -> None:
    eng = engagements([(0, 1, 1, "click", None)])
    with pytest.raises(ValueError, match=r"expected seq_len an int >= 1, got 0"):
        build_examples(eng, tmp_path / "a", seq_len=0, max_topics=1)
    with pytest.raises(ValueError, match=r"expected targets a bool mask of shape \[1\], got int64"):
        build_examples(eng, tmp_path / "a", seq_len=1, max_topics=1, targets=np.array([1]))
    with pytest.raises(DataError, match=r"no examples \(expected at least one positive"):
        build_examples(eng, tmp_path / "a", seq_len=1, max_topics=1, targets=np.array([False]))
    bad = eng.set_column(3, "action", pa.array(["poke"]))
    with pytest.raises(DataError, match=r"unknown actions \['poke'\] \(expected one of"):
        build_examples(bad, tmp_path / "a", seq_len=1, max_topics=1)
    bad_follows = follows([(0, 1, 0, None)]).drop_columns(["unfollowed_at"])
    with pytest.raises(ValueError, match=r"expected user_topics with columns .* missing \['unf"):
        build_examples(eng, tmp_path / "a", seq_len=1, max_topics=1, user_topics=bad_follows)
    with pytest.raises(ValueError, match=r"missing \['action'\]"):
        build_examples(eng.drop_columns(["action"]), tmp_path / "a", seq_len=1, max_topics=1)
    assert not (tmp_path / "a").exists()


# --- dataset and loader ---------------------------------------------------------------------


def test_dataset_single_and_batch_agree(tmp_path: Path) -> None:
    ds = ExampleDataset(small_store(tmp_path / "ex", with_history_ts=True))
    batch = ds[[4, 0, 9]]
    assert batch.history.shape == (3, 3)
    assert batch.history.dtype == torch.int64
    assert batch.history_valid.dtype == torch.bool
    assert batch.followed.shape == (3, 2)
    for row, i in enumerate([4, 0, 9]):
        one = ds[i]
        assert one.history.shape == (3,)
        for name in ARRAY_NAMES:
            assert torch.equal(getattr(one, name), getattr(batch, name)[row]), name
    assert torch.equal(ds[torch.tensor([4, 0, 9])].target, batch.target)
    with pytest.raises(ValueError, match=r"got shape \[1, 2\]"):
        ds[np.array([[0, 1]])]


def test_loader_order_is_fixed_by_seed_and_epoch(tmp_path: Path) -> None:
    ds = ExampleDataset(small_store(tmp_path / "ex"))

    def order(**kwargs: Any) -> list[list[int]]:
        return [b.event.tolist() for b in make_loader(ds, batch_size=4, **kwargs)]

    a = order(seed=7, epoch=0)
    assert a == order(seed=7, epoch=0)
    assert a != order(seed=7, epoch=1)
    assert a != order(seed=8, epoch=0)
    assert sorted(e for batch in a for e in batch) == sorted(
        ds.store.event.tolist()
    )  # each example once
    assert [len(b) for b in a] == [4, 4, 4, 3]
    assert [len(b) for b in order(seed=7, drop_last=True)] == [4, 4, 4]
    assert order(seed=7, start_batch=2) == a[2:]
    assert order(seed=7, num_workers=2) == a


def test_sampler_errors() -> None:
    with pytest.raises(ValueError, match=r"expected batch_size an int >= 1, got 0"):
        EpochBatchSampler(5, batch_size=0, seed=0)
    assert len(EpochBatchSampler(10, batch_size=3, seed=0, start_batch=2)) == 2
