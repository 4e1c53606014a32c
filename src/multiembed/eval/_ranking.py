"""Metrics of ranks and ranked lists: HR@K, the ComiRec protocol, served-list hits.

- `hit_rate_at_k`: the paper's HR@K from `positive_ranks`.
- `ranking_metrics`: Recall@N, HitRate@N and NDCG@N per user under the ComiRec
  protocol (several targets per user, top-N from the full item set).
- `served_hits`: whether each record's positive is in the candidate list the
  retrieval plan returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from multiembed.errors import describe
from multiembed.eval._scores import _int_array
from multiembed.eval.errors import MetricInputError


def _ranks_1d(where: str, ranks: object) -> np.ndarray:
    r = np.asarray(ranks)
    if r.ndim != 1 or not (
        np.issubdtype(r.dtype, np.floating) or np.issubdtype(r.dtype, np.integer)
    ):
        raise MetricInputError(where, "ranks", "a [B] numeric array", describe(r))
    if r.size == 0:
        raise MetricInputError(where, "ranks", "at least one record", "none")
    r = r.astype(np.float64)
    if np.isnan(r).any() or (r < 0).any():
        raise MetricInputError(where, "ranks", "values >= 0 (inf for a miss)", "NaN or negative")
    return r


def _cutoffs(where: str, name: str, ks: object) -> tuple[int, ...]:
    values = (ks,) if isinstance(ks, int | np.integer) else ks
    if not isinstance(values, Sequence | tuple | np.ndarray) or isinstance(values, str):
        raise MetricInputError(where, name, "a positive int or a sequence of them", repr(ks))
    out = tuple(values)
    if not out or any(
        isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in out
    ):
        raise MetricInputError(where, name, "positive ints", repr(list(out)))
    return tuple(int(k) for k in out)


def hit_rate_at_k(ranks: np.ndarray, ks: int | Sequence[int]) -> dict[int, float]:
    """HR@K: the share of records whose positive ranks below K (Section 4.1.1).

    Args:
        ranks: ``[B]`` ranks from `positive_ranks` or `filtered_positive_ranks`
            (0 = best; ``inf`` = can never be retrieved).
        ks: one cut-off or several.

    Returns:
        ``{K: share of records with rank < K}`` for each K, in [0, 1].

    Raises:
        MetricInputError: empty or malformed ranks, a cut-off below 1.

    >>> hit_rate_at_k(np.array([0.0, 3.0, 50.0, np.inf]), (1, 4, 51))
    {1: 0.25, 4: 0.5, 51: 0.75}
    """
    where = "hit_rate_at_k"
    r = _ranks_1d(where, ranks)
    return {k: float(np.mean(r < k)) for k in _cutoffs(where, "ks", ks)}


class RankingMetrics(NamedTuple):
    """Per-user ComiRec metrics at one cut-off N, each ``[U]`` float64 in [0, 1]."""

    recall: np.ndarray
    hit_rate: np.ndarray
    ndcg: np.ndarray


def _targets_csr(where: str, targets: Sequence[np.ndarray], u: int) -> tuple[np.ndarray, ...]:
    """Distinct targets of each user as CSR: (row ``[M]``, item ``[M]``, count ``[U]``)."""
    if len(targets) != u:
        raise MetricInputError(where, "targets", f"{u} arrays (one per user)", str(len(targets)))
    items = [np.zeros(0, dtype=np.int64)]
    for i, t in enumerate(targets):
        distinct = np.unique(_int_array(where, f"targets[{i}]", t, (None,), "a 1-D int array"))
        if distinct.size == 0 or distinct[0] < 0:
            raise MetricInputError(
                where, f"targets[{i}]", "at least one item id >= 0", str(distinct.tolist())
            )
        items.append(distinct)
    counts = np.array([d.size for d in items[1:]], dtype=np.int64)
    return np.repeat(np.arange(u, dtype=np.int64), counts), np.concatenate(items), counts


def ranking_metrics(ranked: np.ndarray, targets: Sequence[np.ndarray], n: int) -> RankingMetrics:
    """Recall@N, HitRate@N and NDCG@N of each user (the ComiRec protocol).

    For user ``u`` with distinct targets ``T_u`` and the first ``N`` ids of its
    ranked list (top-N by max over its embeddings from the full item set; as in
    ComiRec, items of the user's history are not excluded):

        hits      = #{r < N : ranked[u, r] in T_u}
        Recall@N  = hits / |T_u|                    (ComiRec divides by |T_u|)
        HitRate@N = [hits > 0]
        NDCG@N    = sum_{r < N, hit} 1 / log2(r + 2)  /  sum_{r < min(|T_u|, N)} 1 / log2(r + 2)

    NDCG is the standard one: its ideal DCG places ``min(|T_u|, N)`` hits on top.
    (ComiRec's published code divides by an ideal DCG over the number of *hits*
    instead, which overstates NDCG; numbers computed here are not comparable with
    that variant.)

    Args:
        ranked: ``[U, N']`` int item ids, best first, ``-1`` pads; ids in a row distinct;
            only the first ``n`` columns are read.
        targets: ``U`` int arrays of each user's target items (repeats count once).
        n: the cut-off N.

    Returns:
        `RankingMetrics` of ``[U]`` arrays (average them for the table).

    >>> ranked = np.array([[5, 7, 9], [1, 2, 3]])
    >>> m = ranking_metrics(ranked, [np.array([7, 8]), np.array([4])], 3)
    >>> m.recall.tolist(), m.hit_rate.tolist()
    ([0.5, 0.0], [1.0, 0.0])
    >>> round(float(m.ndcg[0]), 4)        # (1 / log2 3) / (1 + 1 / log2 3)
    0.3869
    """
    where = "ranking_metrics"
    (n,) = _cutoffs(where, "n", n)
    r = _int_array(where, "ranked", ranked, (None, None), "a [U, N] int array")
    u = r.shape[0]
    top = r[:, :n]  # [U, n]
    srt = np.sort(top, axis=1)
    if ((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any():
        raise MetricInputError(where, "ranked", "distinct ids in each row", "a repeated id")
    rows, items, counts = _targets_csr(where, targets, u)
    width = int(max(int(items.max()) if items.size else 0, int(top.max()) if top.size else 0)) + 1
    hit = np.isin(np.arange(u)[:, None] * width + top, rows * width + items) & (top >= 0)  # [U, n]
    discount = 1.0 / np.log2(np.arange(n, dtype=np.float64) + 2.0)  # [n]
    ideal = np.cumsum(discount)[np.minimum(counts, n) - 1] if u else np.zeros(0)  # [U]
    n_hits = hit.sum(axis=1)
    dcg = hit[:, : discount.size] @ discount[: hit.shape[1]]
    return RankingMetrics(
        recall=n_hits / counts,
        hit_rate=(n_hits > 0).astype(np.float64),
        ndcg=dcg / ideal,
    )


def served_hits(candidates: Sequence[np.ndarray], positives: np.ndarray) -> np.ndarray:
    """Whether each record's positive is among the candidates actually served.

    The served list is what the retrieval plan returns (budgets, merge, dedup), so
    ``mean(served_hits)`` is the HR of the serving strategy itself, at its budget
    (Section 4.4 compares round-robin with a global top-k this way).

    Args:
        candidates: ``B`` int arrays, the candidate ids served for each record.
        positives: ``[B]`` int positive item of each record.

    Returns:
        ``[B]`` bool.

    >>> served_hits([np.array([3, 1, 2]), np.array([], dtype=np.int64)], np.array([2, 2])).tolist()
    [True, False]
    """
    where = "served_hits"
    p = _int_array(where, "positives", positives, (None,), "a [B] int array")
    if len(candidates) != p.size:
        raise MetricInputError(where, "candidates", f"{p.size} arrays", str(len(candidates)))
    return np.array(
        [bool(np.any(np.asarray(c) == p[i])) for i, c in enumerate(candidates)], dtype=bool
    )
