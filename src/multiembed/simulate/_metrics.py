"""Online metrics of a simulated test and their lifts with bootstrap confidence intervals.

Per user and arm (`user_metrics`):

- ``saves``: saves during the test (the paper's HF Repins);
- ``adopted``: sub-topics the user adopted, a sub-topic with at least
  `SimulationConfig.adopt_saves` saves within one week (days ``7w .. 7w + 6``) of
  the test (the paper's A-Pincepts), counted once however many weeks adopt it.

A lift compares the arm's total over a segment's users with the control's over
the same users, ``sum(treatment) / sum(control) - 1``. Every user is in every arm
(the draws are paired), so the interval resamples users with replacement and
recomputes both totals on the same resample (`bootstrap_lift`); the lift is
significant when the interval leaves out 0.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np

from multiembed.simulate._config import SimulationConfig
from multiembed.simulate._draws import BOOTSTRAP
from multiembed.simulate._loop import SimLog
from multiembed.simulate._population import COHORTS, CORE

WEEK: Final = 7
METRICS: Final = {
    "saves": "HF Repins (saves per user)",
    "adopted": "A-Pincepts (adopted topics per user)",
}
SEGMENTS: Final = ("all", "core", "non_core", "casual", "marginal", "resurrected", "new")


class Lift(NamedTuple):
    """A relative lift and its interval: ``lift`` in ``[low, high]`` at the config's level."""

    lift: float | None
    low: float | None
    high: float | None
    significant: bool


def adopted_topics(
    user: np.ndarray, day: np.ndarray, subtopic: np.ndarray, *, n_users: int, min_saves: int
) -> np.ndarray:
    """``[U]`` distinct sub-topics each user saved at least `min_saves` times in one week.

    Args:
        user, day, subtopic: ``[E]`` one row per save.

    >>> u = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    >>> d = np.array([0, 1, 6, 6, 7, 8, 0, 0, 0])
    >>> s = np.array([5, 5, 5, 9, 9, 9, 3, 3, 4])
    >>> adopted_topics(u, d, s, n_users=3, min_saves=3).tolist()
    [1, 0, 0]
    """
    keys = np.stack((user, subtopic, day // WEEK), axis=1)
    if keys.shape[0] == 0:
        return np.zeros(n_users, dtype=np.int64)
    weeks, counts = np.unique(keys, axis=0, return_counts=True)
    adopted = np.unique(weeks[counts >= min_saves][:, :2], axis=0)
    return np.bincount(adopted[:, 0], minlength=n_users).astype(np.int64)


def user_metrics(
    log: SimLog, item_subtopic: np.ndarray, n_users: int, config: SimulationConfig
) -> dict[str, dict[str, np.ndarray]]:
    """``{arm: {"saves": [U], "adopted": [U]}}`` from the engagement log."""
    out = {}
    for a, name in enumerate(log.arms):
        rows = (log.arm == a) & log.save
        user, day, subtopic = log.user[rows], log.day[rows], item_subtopic[log.item[rows]]
        saves = np.bincount(user, minlength=n_users).astype(np.int64)
        adopted = adopted_topics(user, day, subtopic, n_users=n_users, min_saves=config.adopt_saves)
        out[name] = {"saves": saves, "adopted": adopted}
    return out


def segment_masks(cohort: np.ndarray) -> dict[str, np.ndarray]:
    """``{segment: [U] bool}`` for `SEGMENTS` from cohort codes (`COHORTS`).

    >>> m = segment_masks(np.array([0, 1, 4]))
    >>> m["core"].tolist(), m["non_core"].tolist(), m["new"].tolist()
    ([True, False, False], [False, True, True], [False, False, True])
    """
    out = {"all": np.ones(cohort.size, dtype=bool), "core": cohort == CORE}
    out["non_core"] = cohort != CORE
    out.update({name: cohort == code for code, name in enumerate(COHORTS) if code != CORE})
    return out


def resample_counts(n: int, resamples: int, seed: int, stream: int) -> np.ndarray:
    """``[resamples, n]`` how often each of `n` users is drawn in each bootstrap resample."""
    rng = np.random.default_rng([seed, BOOTSTRAP, stream])
    draws = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), np.int64)
    offsets = np.arange(resamples)[:, None] * n
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n).reshape(resamples, n)


def bootstrap_lift(
    control: np.ndarray, treatment: np.ndarray, counts: np.ndarray, confidence: float
) -> Lift:
    """The paired lift ``sum(treatment) / sum(control) - 1`` and its percentile interval.

    Args:
        control, treatment: ``[n]`` per-user values of the same users.
        counts: ``[R, n]`` resample counts (`resample_counts`).
        confidence: two-sided level, e.g. 0.95.

    Returns:
        `Lift`; all None (not significant) when the control's total is 0.

    >>> c, t = np.array([1.0, 1.0, 2.0]), np.array([2.0, 2.0, 4.0])
    >>> bootstrap_lift(c, t, resample_counts(3, 100, 0, 0), 0.95)
    Lift(lift=1.0, low=1.0, high=1.0, significant=True)
    """
    total = float(control.sum())
    if total <= 0:
        return Lift(None, None, None, False)
    lift = float(treatment.sum()) / total - 1.0
    c = counts @ control.astype(np.float64)
    t = counts @ treatment.astype(np.float64)
    ok = c > 0
    ratios = t[ok] / c[ok] - 1.0
    if ratios.size == 0:
        return Lift(lift, None, None, False)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.percentile(ratios, [tail, 100.0 - tail]))
    return Lift(lift, low, high, bool(low > 0.0 or high < 0.0))


class Comparison(NamedTuple):
    """One arm against the control on one metric and segment."""

    arm: str
    metric: str
    segment: str
    users: int
    control_mean: float
    arm_mean: float
    lift: Lift


def compare(
    values: dict[str, dict[str, np.ndarray]],
    cohort: np.ndarray,
    config: SimulationConfig,
    *,
    control: str,
) -> list[Comparison]:
    """Every other arm against `control`, for every metric and segment (`SEGMENTS`).

    A segment's resamples are the same for every arm and metric, so that lifts of
    one segment are read on the same resampled users.
    """
    masks = segment_masks(cohort)
    out = []
    for s, (segment, mask) in enumerate(masks.items()):
        users = np.flatnonzero(mask)
        counts = resample_counts(users.size, config.bootstrap, config.seed, s)
        for arm, by_metric in values.items():
            if arm == control:
                continue
            for metric in METRICS:
                c = values[control][metric][users]
                t = by_metric[metric][users]
                c_mean, t_mean = (float(v.mean()) if users.size else 0.0 for v in (c, t))
                lift = bootstrap_lift(c, t, counts, config.confidence)
                out.append(Comparison(arm, metric, segment, int(users.size), c_mean, t_mean, lift))
    return out


def average_ranks(values: np.ndarray) -> np.ndarray:
    """``[n]`` 1-based ranks of `values`, ties sharing the mean of their ranks.

    >>> average_ranks(np.array([10.0, 30.0, 20.0, 30.0])).tolist()
    [1.0, 3.5, 2.0, 3.5]
    """
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(1, values.size + 1)
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(group, weights=ranks)
    return sums[group] / counts[group]


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation of paired ``[n]`` values: the Pearson correlation of
    their average ranks (ties share a rank).

    Returns:
        rho in ``[-1, 1]``; None with fewer than 2 pairs or when either side is
        constant (the correlation is undefined).

    >>> spearman(np.array([0.1, 0.2, 0.3]), np.array([5.0, 7.0, 6.0]))
    0.5
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman: expected two [n] arrays, got {x.shape} and {y.shape}")
    if x.size < 2:
        return None
    rx, ry = average_ranks(x) - (x.size + 1) / 2, average_ranks(y) - (y.size + 1) / 2
    norm = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    if norm == 0.0:
        return None
    return float((rx * ry).sum()) / norm
