"""Counter-based random draws: each value is a hash of the seed and its keys.

A draw depends only on what it is about (a stream, a user, a day, an item), never
on the order in which the simulation asks for it. So two arms that show user
``u`` the same item get the same coin for it, and a user has the same sessions
in every arm: differences between arms are paired (common random numbers).

The hash is SplitMix64's finaliser over the keys, folded one after the other.
"""

from __future__ import annotations

from typing import Final

import numpy as np

SESSIONS, RANKER, ENGAGE, SAVE, LEGACY, RANDOM, BOOTSTRAP, TOPICS = range(1, 9)  # draw streams

_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_M1: Final = np.uint64(0xBF58476D1CE4E5B9)
_M2: Final = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def hashed(seed: int, stream: int, *keys: np.ndarray | int) -> np.ndarray:
    """uint64 hash of ``(seed, stream, *keys)``; the keys broadcast together."""
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(np.uint64(seed) * _GOLDEN + np.uint64(stream), dtype=np.uint64))
        for key in keys:
            k = np.asarray(key, dtype=np.int64).astype(np.uint64)
            h = _mix(h ^ (k + _GOLDEN))
    return h


def uniform(seed: int, stream: int, *keys: np.ndarray | int) -> np.ndarray:
    """float64 in ``[0, 1)`` for each broadcast combination of `keys`.

    >>> a = uniform(0, ENGAGE, np.array([1, 2]), 7)
    >>> bool((a == uniform(0, ENGAGE, np.array([1, 2]), 7)).all()), a.shape
    (True, (2,))
    >>> bool(uniform(0, ENGAGE, 1, 7) != uniform(1, ENGAGE, 1, 7))
    True
    """
    return (hashed(seed, stream, *keys) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normal(seed: int, stream: int, *keys: np.ndarray | int) -> np.ndarray:
    """Standard normal draws (Box-Muller over two hashed uniforms)."""
    u1 = uniform(seed, stream, *keys, 0)
    u2 = uniform(seed, stream, *keys, 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def poisson(rate: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Poisson(`rate`) counts by inversion of uniforms `u` (same shape), int64.

    >>> poisson(np.array([0.0, 1.0, 1.0]), np.array([0.99, 0.3, 0.9])).tolist()
    [0, 0, 2]
    """
    rate = np.asarray(rate, dtype=np.float64)
    term = np.exp(-rate)  # P(K = 0)
    cdf = term.copy()
    k = np.zeros(rate.shape, dtype=np.int64)
    below = u >= cdf
    n = 0
    while below.any() and n < 1000:
        n += 1
        term = term * rate / n
        cdf = cdf + term
        k += below
        below &= u >= cdf
    return k
