"""Export a trained run's embeddings as Parquet for any vector database: raw ids in, raw ids out.

`export_run(run_dir, out_dir)` writes, into ``out_dir``::

    items.parquet       item_id (raw id), embedding fixed_size_list<float32, D>: one row
                        per item
    users.parquet       user_id (raw id, as given), slot, embedding
                        fixed_size_list<float32, D>, importance: one row per used slot of
                        each user (with ``users_csv``)
    quarantine.parquet  line, user_id, item_id, rule: history rows that were not used
                        (with ``users_csv``)
    export.json         counts, the model version and the files written

Both embedding files carry what a vector database needs to index them, as
Parquet schema metadata (`vector_metadata`): ``metric`` (``inner_product``: the
score the model was trained and is served with), ``dimension`` (D),
``normalisation`` (``l2`` when every vector has unit length, measured on the
vectors written; else ``none``; with unit vectors the inner product is the
cosine), ``model_version`` and ``multiembed_version``.

The user histories are a CSV with a header holding ``user_id``, ``item_id`` and
``timestamp`` (raw ids, any extra column ignored), or, with ``users_mapping``, a
file in the layout a column mapping describes (its own column names, ISO-8601
times, a delimiter, Parquet; see `multiembed.data.adapters.generic.read_histories`):
rows it cannot use (a missing id, a time that is not a time) are left out and
listed in the quarantine with the column and the rule. Each user's history is their
rows ordered by timestamp; the last ``examples.seq_len`` known items are the
sequence the user tower reads, exactly as in training. A raw item id the run's
vocabulary does not know is not fatal: the row is left out, counted and listed
in the quarantine. A user whose every row is unknown still gets an embedding (the
tower's empty-history summary) and is counted.

An item counts as valid for the clustering seeds (paper Eq. 6) when the data
directory's ``items.parquet`` says so (``data_dir`` given, and refused unless it
is the data the run was trained on: same vocabularies and item table), else
when it has a pretrained vector (models with vectors), else always.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

import multiembed
from multiembed._files import atomic_write, atomic_write_bytes
from multiembed.data.adapters.generic import read_histories
from multiembed.data.histories import latest_per_user
from multiembed.data.schema import ITEMS_FILE, VOCAB_DIR, item_validity
from multiembed.data.vocab import Vocab
from multiembed.errors import DataError, InputFileError
from multiembed.runs import LoadedRun, UserItemModel, embed_items, embed_users, inference, load_run

ITEMS_OUT = "items.parquet"
USERS_OUT = "users.parquet"
QUARANTINE_OUT = "quarantine.parquet"
SUMMARY_OUT = "export.json"
HISTORY_COLUMNS = ("user_id", "item_id", "timestamp")
UNKNOWN_ITEM = "unknown item id"
QUARANTINE_LISTED = 1000
"""At most this many quarantined rows are listed (all are counted)."""

METRIC = "inner_product"
UNIT_NORM_TOLERANCE = 1e-4
"""A vector counts as unit length when its L2 norm is within this of 1 (float32 rounding)."""

__all__ = ["export_run", "normalisation", "vector_metadata"]


def _embedding_column(x: np.ndarray) -> pa.Array:
    """``[N, D]`` -> fixed_size_list<float32, D> of N rows."""
    _, d = x.shape
    return pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel()), d)


def normalisation(x: np.ndarray) -> str:
    """``"l2"`` when every row of ``[N, D]`` `x` has unit L2 norm, else ``"none"``.

    Measured on the vectors, so the metadata cannot claim what they are not; an
    empty table claims nothing.

    >>> normalisation(np.array([[0.6, 0.8], [1.0, 0.0]])), normalisation(np.array([[3.0, 4.0]]))
    ('l2', 'none')
    """
    norms = np.linalg.norm(np.asarray(x, dtype=np.float64), axis=1)  # [N]
    unit = norms.size > 0 and bool(np.all(np.abs(norms - 1.0) <= UNIT_NORM_TOLERANCE))
    return "l2" if unit else "none"


def vector_metadata(x: np.ndarray, model_version: str) -> dict[str, str]:
    """Parquet schema metadata of an embedding table holding the ``[N, D]`` vectors `x`.

    >>> vector_metadata(np.eye(2), "dcm-0123")  # doctest: +NORMALIZE_WHITESPACE +ELLIPSIS
    {'metric': 'inner_product', 'dimension': '2', 'normalisation': 'l2',
     'model_version': 'dcm-0123', 'multiembed_version': '...'}
    """
    return {
        "metric": METRIC,
        "dimension": str(x.shape[1]),
        "normalisation": normalisation(x),
        "model_version": model_version,
        "multiembed_version": multiembed.__version__,
    }


def _write(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _write_vectors(path: Path, table: pa.Table, vectors: np.ndarray, model_version: str) -> None:
    """Write `table`, whose ``embedding`` column holds the ``[N, D]`` `vectors`, with metadata."""
    _write(path, table.replace_schema_metadata(vector_metadata(vectors, model_version)))


def export_run(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    users_csv: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 256,
    users_mapping: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write a run's item (and optionally user) embeddings as Parquet under raw ids.

    Args:
        run_dir: a run directory written by `multiembed.train.train` (verified on load).
        out_dir: where the files go (created if needed).
        users_csv: a CSV of user histories (``user_id, item_id, timestamp``), or None.
        data_dir: the prepared data directory, for item validity (see the module docstring).
        batch_size: users embedded at a time.
        users_mapping: a TOML column mapping (as for ``prepare``) of ``users_csv``.

    Returns:
        The summary written to ``export.json``: ``model_version``, ``n_items``, ``dim``,
        and with histories ``n_users``, ``n_user_rows``, ``rows_in``, ``rows_used``,
        ``unknown_item_rows``, ``unknown_item_ids``, ``users_without_known_items``.

    Raises:
        RunIntegrityError: a damaged run, or a ``data_dir`` with another data
            fingerprint than the run's. InputFileError: a missing or malformed CSV.

    Example:
        >>> export_run("runs/dcm", "export/", users_csv="histories.csv")  # doctest: +SKIP
    """
    run = load_run(Path(run_dir), data_dir=None if data_dir is None else Path(data_dir))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items_vocab = Vocab.load(run.run_dir / VOCAB_DIR / "items.parquet")
    n = min(run.features.n_items, len(items_vocab))
    with inference(run.model):
        items = embed_items(run.model, np.arange(n), batch_size=1024)  # [N, D]
    table = pa.table(
        {"item_id": items_vocab.decode(np.arange(n)), "embedding": _embedding_column(items)}
    )
    _write_vectors(out / ITEMS_OUT, table, items, run.model_version)
    summary: dict[str, Any] = {
        "model_version": run.model_version,
        "n_items": int(n),
        "dim": int(items.shape[1]),
        "metric": METRIC,
        "normalisation": normalisation(items),
        "files": [ITEMS_OUT],
    }
    if users_csv is not None:
        valid = _item_validity(run, None if data_dir is None else Path(data_dir))
        mapping = None if users_mapping is None else Path(users_mapping)
        summary |= _export_users(run, Path(users_csv), out, items_vocab, valid, batch_size, mapping)
        summary["files"] += [USERS_OUT, QUARANTINE_OUT]
    atomic_write_bytes(out / SUMMARY_OUT, (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def _item_validity(run: LoadedRun, data_dir: Path | None) -> np.ndarray:
    """``[N]`` bool: may the item seed a cluster (Eq. 6)."""
    n = run.features.n_items
    if data_dir is not None:
        table = pq.read_table(data_dir / ITEMS_FILE, columns=["item_id", "valid"])
        return item_validity(table, n, unlisted=False)
    if run.features.vector_present is not None:
        return run.features.vector_present.cpu().numpy().astype(bool)
    return np.ones(n, dtype=bool)


def _read_histories(path: Path) -> pa.Table:
    if not path.is_file():
        raise InputFileError(path, "missing", expected="a CSV of user_id,item_id,timestamp")
    try:
        return pa_csv.read_csv(
            path,
            convert_options=pa_csv.ConvertOptions(
                column_types={"item_id": pa.string()}, include_columns=list(HISTORY_COLUMNS)
            ),
        )
    except (pa.ArrowInvalid, KeyError) as err:
        raise InputFileError(
            path, f"unreadable ({err})", expected=f"a CSV with columns {', '.join(HISTORY_COLUMNS)}"
        ) from err


def _export_users(
    run: LoadedRun,
    path: Path,
    out: Path,
    items_vocab: Vocab,
    valid: np.ndarray,
    batch_size: int,
    mapping: Path | None = None,
) -> dict[str, Any]:
    refused = _REFUSED.empty_table()
    if mapping is None:
        table = _read_histories(path)
        line = np.arange(2, table.num_rows + 2, dtype=np.int64)  # 1-based (header is line 1)
    else:
        mapped, q = read_histories(path, mapping)
        line = np.asarray(mapped.column("row").to_numpy(), dtype=np.int64)
        table = mapped.select(["user_id", "item_id", "ts"]).rename_columns(list(HISTORY_COLUMNS))
        refused = _refused(q.to_table())
    rows_in = table.num_rows
    raw_items = table.column("item_id").combine_chunks()
    item = np.asarray(
        pc.index_in(pc.utf8_trim_whitespace(raw_items), value_set=items_vocab.raw.cast(pa.string()))
        .fill_null(-1)
        .to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    item[item >= run.features.n_items] = -1
    unknown = item < 0
    listed = pa.array(np.flatnonzero(unknown)[:QUARANTINE_LISTED])
    quarantine = pa.table(
        {
            "line": pa.array(line).take(listed),
            "user_id": table.column("user_id").take(listed).cast(pa.string()),
            "item_id": raw_items.take(listed),
            "rule": pa.array([UNKNOWN_ITEM] * len(listed), pa.string()),
        }
    )
    _write(out / QUARANTINE_OUT, pa.concat_tables([refused, quarantine.cast(_REFUSED)]))

    users_raw = table.column("user_id").combine_chunks()
    user_keys = pc.unique(users_raw)
    user = np.asarray(pc.index_in(users_raw, value_set=user_keys).to_numpy(), dtype=np.int64)
    ts_order = pc.sort_indices(
        pa.table({"u": user, "t": table.column("timestamp")}),
        [("u", "ascending"), ("t", "ascending")],
    )
    order = np.asarray(ts_order.to_numpy(), dtype=np.int64)
    order = order[~unknown[order]]  # known rows, by user then time
    history, history_valid = _histories(
        user[order], item[order], valid, len(user_keys), run.config.examples.seq_len
    )
    with inference(run.model):
        emb = embed_users(_implicit(run.model), history, history_valid, None, batch_size=batch_size)
    u, k = np.nonzero(emb.slot_mask)  # row-major: users in order, slots ascending
    vectors = emb.embeddings[u, k]  # [R, D]: one row per used slot
    table = pa.table(
        {
            "user_id": user_keys.take(pa.array(u)),
            "slot": pa.array(k.astype(np.int32)),
            "embedding": _embedding_column(vectors),
            "importance": pa.array(emb.importance[u, k].astype(np.float32)),
        }
    )
    _write_vectors(out / USERS_OUT, table, vectors, run.model_version)
    return {
        "n_users": len(user_keys),
        "n_user_rows": int(u.size),
        "rows_in": int(rows_in) + refused.num_rows,
        "refused_rows": refused.num_rows,
        "rows_used": int(order.size),
        "unknown_item_rows": int(unknown.sum()),
        "unknown_item_ids": len(pc.unique(raw_items.filter(pa.array(unknown)))),
        "users_without_known_items": int(np.count_nonzero(history[:, -1] < 0)),
    }


_REFUSED = pa.schema(
    [
        ("line", pa.int64()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("rule", pa.string()),
    ]
)


def _refused(rows: pa.Table) -> pa.Table:
    """History rows a mapped read refused, in the export's quarantine layout.

    The rule names the column, the rule and the value (ids are not known there).
    """
    rules = [
        f"{c}: {r} (value {v!r})"
        for c, r, v in zip(
            rows.column("column").to_pylist(),
            rows.column("rule").to_pylist(),
            rows.column("value").to_pylist(),
            strict=True,
        )
    ]
    nulls = pa.nulls(rows.num_rows, pa.string())
    return pa.table(
        [rows.column("row"), nulls, nulls, pa.array(rules, pa.string())], schema=_REFUSED
    )


def _implicit(model: object) -> UserItemModel:
    if not isinstance(model, UserItemModel):
        raise DataError(
            "export: user embeddings need an implicit-interest model (embed_users), "
            f"got {type(model).__name__}"
        )
    return model


def _histories(
    user: np.ndarray, item: np.ndarray, valid: np.ndarray, n_users: int, seq_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (user, time) -> ``[U, L]`` right-aligned histories (``-1`` pads), validity.

    >>> h, v = _histories(np.array([0, 0, 0, 2]), np.array([5, 6, 7, 1]), np.ones(8, bool), 3, 2)
    >>> h.tolist(), v.tolist()
    ([[6, 7], [-1, -1], [-1, 1]], [[True, True], [False, False], [False, True]])
    """
    history = latest_per_user(user, item, n_users, seq_len, fill=-1)  # [U, L]
    history_valid = (history >= 0) & valid[np.maximum(history, 0)]
    return history, history_valid
