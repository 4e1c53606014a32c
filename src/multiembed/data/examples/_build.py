"""Building examples: vectorised windows over time-sorted engagements, written as `.npy`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from multiembed._files import crc32_file, seal_json
from multiembed.data.examples._format import (
    _ARRAYS,
    _NEVER,
    FORMAT_VERSION,
    META_FILE,
    PAD,
)
from multiembed.data.examples._store import ExampleStore
from multiembed.data.schema import ACTIONS, NEGATIVE_ACTIONS, POSITIVE_ACTIONS, item_validity
from multiembed.errors import DataError


def build_examples(
    engagements: pa.Table,
    out_dir: str | os.PathLike[str],
    *,
    seq_len: int,
    max_topics: int,
    targets: np.ndarray | None = None,
    history: np.ndarray | None = None,
    items: pa.Table | None = None,
    user_topics: pa.Table | None = None,
    with_history_ts: bool = False,
    overwrite: bool = False,
    chunk_size: int = 131_072,
) -> ExampleStore:
    """Build one example per positive target engagement and write it to ``out_dir``.

    Args:
        engagements: canonical engagements (``user_id, item_id, ts, action,
            source_topic``), ``E`` rows.
        out_dir: directory to create; it is written beside itself under a
            temporary name and renamed into place when complete.
        seq_len: ``L``, history slots per example.
        max_topics: ``T``, followed-topic slots per example.
        targets: ``[E]`` bool, events that may be targets (e.g. the training
            window of `time_split`); None means all. Non-positive actions among
            them are not targets (counted in ``meta.json``).
        history: ``[E]`` bool, events that may appear in histories (e.g. to hide
            a held-out user's targets under the ComiRec protocol); None means all.
        items: canonical items table (``item_id``, ``valid``); an item absent
            from it counts as invalid. None treats every item as valid.
        user_topics: canonical follows (``user_id, topic, followed_at,
            unfollowed_at``); None leaves ``followed`` all padding.
        with_history_ts: also store ``history_ts``.
        overwrite: replace an existing ``out_dir`` (otherwise an error).
        chunk_size: targets processed at a time (bounds peak memory).

    Returns:
        The written examples, opened as an `ExampleStore`.

    Raises:
        ValueError: bad arguments (shapes, sizes). FileExistsError: ``out_dir``
        exists. DataError: unknown actions, negative ids, or no examples.

    Example:
        >>> import tempfile
        >>> eng = pa.table({
        ...     "user_id": [0, 0, 0, 0], "item_id": [10, 11, 12, 13], "ts": [1, 2, 2, 3],
        ...     "action": ["click", "hide", "save", "click"], "source_topic": [None, None, None, 7],
        ... })
        >>> out = Path(tempfile.mkdtemp()) / "ex"
        >>> store = build_examples(eng, out, seq_len=3, max_topics=2)
        >>> store.history.tolist()     # targets at ts 1, 2, 2, 3; hide (row 1) is no target
        [[-1, -1, -1], [-1, -1, 10], [10, 11, 12]]
        >>> store.target.tolist(), store.source_topic.tolist()
        ([10, 12, 13], [-1, -1, 7])
        >>> store.history_negative[2].tolist(), store.history_valid[2].tolist()
        ([False, True, False], [True, False, True])
    """
    where = "build_examples"
    for name, value in (
        ("seq_len", seq_len),
        ("max_topics", max_topics),
        ("chunk_size", chunk_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: expected {name} an int >= 1, got {value!r}")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{where}: {out} exists (pass overwrite=True to replace it)")

    cols = _engagement_columns(engagements)
    e = cols["ts"].size
    n_unknown_items = 0
    if items is not None:
        cols["valid"], n_unknown_items = _item_validity(items, cols["item"])
    target_mask = _event_mask(where, "targets", targets, e) & cols["positive"]
    history_mask = _event_mask(where, "history", history, e)
    n_requested = int(e if targets is None else np.count_nonzero(targets))

    # Sort by (user, ts); lexsort is stable, so ties keep their row order.
    order = np.lexsort((cols["ts"], cols["user"]))  # [E]
    user_s, ts_s = cols["user"][order], cols["ts"][order]
    steps = np.arange(e, dtype=np.int64)
    new_user = np.ones(e, dtype=bool)
    new_user[1:] = user_s[1:] != user_s[:-1]
    new_block = new_user.copy()  # a block = events of one user at one timestamp
    new_block[1:] |= ts_s[1:] != ts_s[:-1]
    user_start = np.maximum.accumulate(np.where(new_user, steps, 0))  # [E]
    block_start = np.maximum.accumulate(np.where(new_block, steps, 0))  # [E]
    del new_user, new_block, steps

    # History events, compacted in sorted order behind one leading padding slot.
    eligible = history_mask[order]
    hist_rows = order[eligible]
    n_before = np.zeros(e + 1, dtype=np.int64)  # eligible events before each sorted position
    np.cumsum(eligible, out=n_before[1:])
    slot_item = np.concatenate(([PAD], cols["item"][hist_rows]))
    slot_valid = np.concatenate(([False], cols["valid"][hist_rows] & cols["positive"][hist_rows]))
    slot_negative = np.concatenate(([False], cols["negative"][hist_rows]))
    slot_ts = np.concatenate(([PAD], cols["ts"][hist_rows])) if with_history_ts else None
    del eligible, hist_rows

    target_pos = np.flatnonzero(target_mask[order])  # sorted positions of the targets
    n = target_pos.size
    if n == 0:
        raise DataError(
            f"{where}: no examples (expected at least one positive engagement among the "
            f"{n_requested} target events of {e})"
        )
    # History window of target i: compacted slots [begin, end) with end = the
    # first slot at or after its timestamp, so ties and later events are out.
    end = n_before[block_start[target_pos]]
    begin = n_before[user_start[target_pos]]
    target_rows = order[target_pos]
    del order, user_s, ts_s, user_start, block_start, n_before

    follows = _Follows(user_topics, n_users=int(cols["user"].max()) + 1)

    out.parent.mkdir(parents=True, exist_ok=True)
    # ``.<name>.<pid>.<random>.tmp``: a folder a killed build left is recognised as stale
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent)
    )
    try:
        names = [k for k in _ARRAYS if k != "history_ts" or with_history_ts]
        arrays = {k: _create(tmp, k, n, seq_len, max_topics) for k in names}
        arrays["user"][:] = cols["user"][target_rows]
        arrays["event"][:] = target_rows
        arrays["target"][:] = cols["item"][target_rows]
        arrays["target_ts"][:] = cols["ts"][target_rows]
        arrays["source_topic"][:] = cols["source_topic"][target_rows]
        offsets = np.arange(1 - seq_len, 1, dtype=np.int64)  # [L]: slot end-L+1 .. end
        n_empty = 0
        for lo in range(0, n, chunk_size):
            hi = min(lo + chunk_size, n)
            idx = end[lo:hi, None] + offsets  # [n, L] 1-based compacted slot (0 = pad)
            idx[idx <= begin[lo:hi, None]] = 0  # before the user's first slot: pad
            arrays["history"][lo:hi] = slot_item[idx]
            arrays["history_valid"][lo:hi] = slot_valid[idx]
            arrays["history_negative"][lo:hi] = slot_negative[idx]
            if slot_ts is not None:
                arrays["history_ts"][lo:hi] = slot_ts[idx]
            n_empty += int(np.count_nonzero(idx[:, -1] == 0))
            arrays["followed"][lo:hi] = follows.at(
                cols["user"][target_rows[lo:hi]], cols["ts"][target_rows[lo:hi]], max_topics
            )
        for array in arrays.values():
            array.flush()
        del arrays
        meta = {
            "format_version": FORMAT_VERSION,
            "n_examples": int(n),
            "seq_len": seq_len,
            "max_topics": max_topics,
            "pad": PAD,
            "alignment": "right",
            "ties": "events at the target's timestamp are not history",
            "has_history_ts": with_history_ts,
            "n_events": int(e),
            "n_target_events": n_requested,
            "n_non_positive_targets": n_requested - int(n),
            "n_empty_history": n_empty,
            "n_history_events": int(np.count_nonzero(history_mask)),
            "n_items_missing_from_items_table": n_unknown_items,
            "crc32": {f"{k}.npy": crc32_file(tmp / f"{k}.npy") for k in names},
        }
        (tmp / META_FILE).write_bytes(seal_json(meta))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExampleStore.open(out)


def _require(table: pa.Table, columns: tuple[str, ...], what: str) -> None:
    """Raises ValueError naming the `columns` of `table` (described by `what`) it lacks."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"build_examples: expected {what}, missing {missing}")


def _no_nulls(table: str, name: str, column: pa.Array | pa.ChunkedArray) -> None:
    if column.null_count:
        raise DataError(
            f"build_examples: {table}.{name} has {column.null_count} nulls (expected none)"
        )


def _engagement_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The engagement columns as ``[E]`` NumPy arrays, with action kinds decoded."""
    where = "build_examples"
    required = ("user_id", "item_id", "ts", "action")
    _require(table, required, f"engagements with columns {list(required)}")
    out: dict[str, np.ndarray] = {}
    for key, name in (("user", "user_id"), ("item", "item_id"), ("ts", "ts")):
        column = table.column(name)
        _no_nulls("engagements", name, column)
        out[key] = np.asarray(column.to_numpy(), dtype=np.int64)
        if key != "ts" and out[key].size and out[key].min() < 0:
            raise DataError(f"{where}: expected engagements.{name} >= 0, got {out[key].min()}")
    actions = pc.dictionary_encode(table.column("action").combine_chunks())
    _no_nulls("engagements", "action", actions)
    kinds = actions.dictionary.to_pylist()
    unknown = sorted(set(kinds) - set(ACTIONS))
    if unknown:
        raise DataError(f"{where}: unknown actions {unknown} (expected one of {list(ACTIONS)})")
    codes = actions.indices.to_numpy()
    out["positive"] = np.array([k in POSITIVE_ACTIONS for k in kinds], dtype=bool)[codes]
    out["negative"] = np.array([k in NEGATIVE_ACTIONS for k in kinds], dtype=bool)[codes]
    if "source_topic" in table.column_names:
        topic = table.column("source_topic").cast(pa.int64()).fill_null(PAD)
        out["source_topic"] = np.asarray(topic.to_numpy(), dtype=np.int64)
    else:
        out["source_topic"] = np.full(out["ts"].size, PAD, dtype=np.int64)
    out["valid"] = np.ones(out["ts"].size, dtype=bool)
    return out


def _item_validity(items: pa.Table, item: np.ndarray) -> tuple[np.ndarray, int]:
    """``[E]`` validity of each engagement's item; the number of distinct items not in ``items``."""
    where = "build_examples"
    _require(items, ("item_id", "valid"), "items with columns item_id and valid")
    ids = np.asarray(items.column("item_id").to_numpy(), dtype=np.int64)
    if ids.size and ids.min() < 0:
        raise DataError(f"{where}: expected items.item_id >= 0, got {ids.min()}")
    size = max(int(ids.max()) + 1 if ids.size else 0, int(item.max()) + 1 if item.size else 0)
    listed = np.zeros(size, dtype=bool)
    listed[ids] = True
    valid = item_validity(items, size, unlisted=False)
    seen = np.unique(item)
    return valid[item], int(np.count_nonzero(~listed[seen]))


def _event_mask(where: str, name: str, mask: np.ndarray | None, e: int) -> np.ndarray:
    if mask is None:
        return np.ones(e, dtype=bool)
    array = np.asarray(mask)
    if array.dtype != np.bool_ or array.shape != (e,):
        raise ValueError(
            f"{where}: expected {name} a bool mask of shape [{e}], "
            f"got {array.dtype} of shape {list(array.shape)}"
        )
    return array


def _create(root: Path, name: str, n: int, seq_len: int, max_topics: int) -> np.memmap:
    dtype, letter = _ARRAYS[name]
    shape = (n, *{"": (), "L": (seq_len,), "T": (max_topics,)}[letter])
    return np.lib.format.open_memmap(root / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)


class _Follows:
    """Follow intervals grouped by user, most recently followed first (ties: lower topic)."""

    def __init__(self, table: pa.Table | None, *, n_users: int) -> None:
        if table is None or table.num_rows == 0:
            self.count = np.zeros(n_users, dtype=np.int64)
            self.start = self.count
            self.topic = self.followed_at = self.unfollowed_at = np.zeros(0, dtype=np.int64)
            return
        where = "build_examples"
        required = ("user_id", "topic", "followed_at", "unfollowed_at")
        _require(table, required, f"user_topics with columns {list(required)}")
        for name in required[:3]:
            _no_nulls("user_topics", name, table.column(name))
        user = np.asarray(table.column("user_id").to_numpy(), dtype=np.int64)
        if user.min() < 0:
            raise DataError(f"{where}: expected user_topics.user_id >= 0, got {user.min()}")
        topic = np.asarray(table.column("topic").to_numpy(), dtype=np.int64)
        followed_at = np.asarray(table.column("followed_at").to_numpy(), dtype=np.int64)
        unfollowed = table.column("unfollowed_at").fill_null(_NEVER)
        unfollowed_at = np.asarray(unfollowed.to_numpy(), dtype=np.int64)
        order = np.lexsort((topic, -followed_at, user))
        self.topic, self.followed_at = topic[order], followed_at[order]
        self.unfollowed_at = unfollowed_at[order]
        size = max(n_users, int(user.max()) + 1)
        self.count = np.bincount(user, minlength=size)  # [U]
        self.start = np.concatenate(([0], np.cumsum(self.count)[:-1]))  # [U]

    def at(self, users: np.ndarray, ts: np.ndarray, max_topics: int) -> np.ndarray:
        """``[n, T]`` topics followed by ``users[i]`` at ``ts[i]``, padded with -1."""
        n = users.size
        out = np.full((n, max_topics), PAD, dtype=np.int64)
        count = self.count[users]  # [n]
        total = int(count.sum())
        if total == 0:
            return out
        # One row per (example, follow record of its user), in the user's preferred order.
        example = np.repeat(np.arange(n), count)  # [P]
        first_pair = np.cumsum(count) - count  # [n]
        row = np.repeat(self.start[users] - first_pair, count) + np.arange(total)  # [P]
        t = ts[example]
        active = (self.followed_at[row] <= t) & (self.unfollowed_at[row] > t)
        example, topic = example[active], self.topic[row[active]]
        # Drop a topic repeated for one example (overlapping follow records).
        by_key = np.lexsort((np.arange(example.size), topic, example))
        repeat = np.zeros(example.size, dtype=bool)
        repeat[by_key[1:]] = (example[by_key[1:]] == example[by_key[:-1]]) & (
            topic[by_key[1:]] == topic[by_key[:-1]]
        )
        example, topic = example[~repeat], topic[~repeat]
        slot = np.arange(example.size) - np.searchsorted(example, example)  # rank in its example
        keep = slot < max_topics
        out[example[keep], slot[keep]] = topic[keep]
        return out
