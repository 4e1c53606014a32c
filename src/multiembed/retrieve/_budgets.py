"""Retrieval budgets per embedding (Section 3.5), always summing exactly to the total."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from multiembed.retrieve._checks import describe, non_negative_int
from multiembed.retrieve._settings import PlanSettings
from multiembed.retrieve.errors import RetrievalInputError

_TOL = 1e-9  # shares closer than this count as equal (float noise, not preference)


def implicit_budgets(
    importance: np.ndarray, total: int, *, floor: int = 0, mask: np.ndarray | None = None
) -> np.ndarray:
    """Split `total` over `K` implicit embeddings in proportion to cluster importance.

    Section 3.5: the budget of embedding ``j`` follows its cluster importance
    ``sum_i b_ij`` (the sum of its routing weights), so torso and tail interests
    are not over-fetched. The rule:

    1. Used slots are those with ``importance > 0`` (and ``mask`` True); the
       others get 0.
    2. Proportional with a floor (water-filling): a used slot whose share
       ``R * w_j / sum(w)`` falls below `floor` gets exactly `floor`, and the rest
       ``R`` is re-shared over the other slots until every share is at least the
       floor. If ``floor * used > total`` the floor cannot be met and is lowered
       to ``total // used``.
    3. Largest remainder (Hamilton) rounding: every share is rounded down, and
       the units left go one each to the largest fractional parts (ties: larger
       importance, then smaller slot index).

    The result sums exactly to `total` (when any slot is used), is monotone in
    importance, and is at least the (feasible) floor on every used slot.

    Args:
        importance: ``[K]`` non-negative finite cluster importances.
        total: budget to split.
        floor: least budget of a used slot.
        mask: ``[K]`` bool, False for an unused slot; default all True.

    Returns:
        ``[K]`` int64 budgets (all 0 when no slot is used).

    >>> implicit_budgets(np.array([0.5, 0.3, 0.2, 0.0]), 10).tolist()
    [5, 3, 2, 0]
    >>> implicit_budgets(np.array([0.9, 0.05, 0.05]), 100, floor=10).tolist()
    [80, 10, 10]
    """
    where = "implicit_budgets"
    total = non_negative_int(where, "total", total)
    floor = non_negative_int(where, "floor", floor)
    w = _importance(where, importance)
    used = _used(where, "mask", w, mask)
    out = np.zeros(w.size, dtype=np.int64)
    n = int(used.sum())
    if n == 0 or total == 0:
        return out
    floor = min(floor, total // n)
    at_floor = np.zeros(w.size, dtype=bool)
    rest = total
    while True:  # at most K rounds: each fixes at least one more slot at the floor
        free = used & ~at_floor
        share = np.where(free, rest * w / w[free].sum(), 0.0)
        low = free & (share < floor - _TOL)
        if not low.any():
            break
        at_floor |= low
        rest -= floor * int(low.sum())
    out[at_floor] = floor
    base = np.floor(share + _TOL).astype(np.int64)
    out[free] = base[free]
    left = rest - int(base[free].sum())
    remainder = np.round(np.where(free, share - base, -1.0), 9)
    order = np.lexsort((np.arange(w.size), -w, -remainder))  # largest remainder first
    out[order[:left]] += 1
    return out


def equal_budgets(k: int, total: int) -> np.ndarray:
    """Split `total` equally over `k` embeddings (Section 3.5, explicit interests).

    The first ``total % k`` embeddings get one more, so the sum is exactly `total`.

    Returns:
        ``[k]`` int64 (empty for ``k = 0``).

    >>> equal_budgets(3, 10).tolist()
    [4, 3, 3]
    """
    k = non_negative_int("equal_budgets", "k", k)
    total = non_negative_int("equal_budgets", "total", total)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    out = np.full(k, total // k, dtype=np.int64)
    out[: total % k] += 1
    return out


def _importance(where: str, importance: object) -> np.ndarray:
    if (
        not isinstance(importance, np.ndarray)
        or importance.ndim != 1
        or not np.issubdtype(importance.dtype, np.number)
    ):
        raise RetrievalInputError(where, "importance", "a [K] numeric array", describe(importance))
    w = importance.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise RetrievalInputError(
            where, "importance", "finite non-negative values", str(importance.tolist())
        )
    return w


def _used(where: str, name: str, w: np.ndarray, mask: object) -> np.ndarray:
    """``[K]`` bool: slots of positive importance `w` that `mask` (None, or ``[K]`` bool) uses."""
    if mask is None:
        return w > 0
    if not isinstance(mask, np.ndarray) or mask.shape != w.shape or mask.dtype != bool:
        raise RetrievalInputError(where, name, f"a [{w.size}] bool array", describe(mask))
    return (w > 0) & mask


class ListBudgets(NamedTuple):
    """One request's lists and their budgets, in round-robin order (implicit lists first).

    Attributes:
        slots: ``[L_im]`` implicit slots searched, most important first (stable on slot).
        implicit: ``[L_im]`` int64 budget of each.
        rows: ``[L_ex]`` explicit rows searched (indices into the sampled topics), in order.
        explicit: ``[L_ex]`` int64 budget of each.
    """

    slots: np.ndarray
    implicit: np.ndarray
    rows: np.ndarray
    explicit: np.ndarray

    @property
    def budgets(self) -> np.ndarray:
        """``[L]`` int64 budgets of every list, in round-robin order."""
        return np.concatenate([self.implicit, self.explicit]).astype(np.int64)

    @property
    def lists(self) -> int:
        """``L``, the number of lists (0: serve the popularity list)."""
        return int(self.slots.size + self.rows.size)


def plan_budgets(
    settings: PlanSettings,
    *,
    importance: np.ndarray | None = None,
    slot_mask: np.ndarray | None = None,
    n_topics: int = 0,
) -> ListBudgets:
    """Split ``settings.total`` over one request's lists (Section 3.5).

    With both kinds, the implicit lists get ``settings.implicit_share`` of the total
    (None: in proportion to the number of lists of each kind); implicit budgets follow
    cluster importance (`implicit_budgets`, with ``settings.floor``), explicit ones are
    equal (`equal_budgets`). A list with budget 0 is not searched.

    Args:
        settings: `PlanSettings`.
        importance: ``[K]`` cluster importance, or None (no implicit embeddings).
        slot_mask: ``[K]`` bool used slots, with `importance`.
        n_topics: explicit embeddings (sampled followed topics).

    >>> b = plan_budgets(PlanSettings(total=10, floor=0), importance=np.array([1.0, 3.0]),
    ...                  slot_mask=np.array([True, True]), n_topics=2)
    >>> b.slots.tolist(), b.budgets.tolist()
    ([1, 0], [4, 1, 3, 2])
    """
    n_topics = non_negative_int("plan_budgets", "n_topics", n_topics)
    w = np.zeros(0) if importance is None else _importance("plan_budgets", importance)
    used = _used("plan_budgets", "slot_mask", w, slot_mask)
    n_im = int(used.sum())
    total = settings.total
    if n_im and n_topics:
        share = settings.implicit_share
        im_total = min(total, round(total * (n_im / (n_im + n_topics) if share is None else share)))
    else:
        im_total = total if n_im else 0
    im_b = implicit_budgets(w, im_total, floor=settings.floor, mask=slot_mask)  # 0s: no slot used
    ex_b = equal_budgets(n_topics, total - im_total)
    slots = np.flatnonzero(im_b > 0)
    slots = slots[np.argsort(-w[slots], kind="stable")]  # most important first
    rows = np.flatnonzero(ex_b > 0)
    return ListBudgets(slots, im_b[slots], rows, ex_b[rows])
