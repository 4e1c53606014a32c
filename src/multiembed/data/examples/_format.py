"""Format of a stored example set: array names, dtypes, padding, the `Example` tuple."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from torch import Tensor

PAD = -1
"""Padding in ``history``, ``followed`` and ``history_ts`` slots; "no topic" in ``source_topic``."""

FORMAT_VERSION = 2  # 2: meta.json checksummed, with the CRC-32 of every array file
META_FILE = "meta.json"
_NEVER = np.iinfo(np.int64).max  # unfollowed_at of a follow that is still active

# name -> (dtype, trailing shape letter: "" for [N], "L" for [N, L], "T" for [N, T])
_ARRAYS: dict[str, tuple[type, str]] = {
    "user": (np.int64, ""),
    "event": (np.int64, ""),
    "target": (np.int64, ""),
    "target_ts": (np.int64, ""),
    "source_topic": (np.int64, ""),
    "history": (np.int64, "L"),
    "history_valid": (np.bool_, "L"),
    "history_negative": (np.bool_, "L"),
    "history_ts": (np.int64, "L"),
    "followed": (np.int64, "T"),
}
_OPTIONAL = frozenset({"history_ts"})


class Example(NamedTuple):
    """One example (shapes without ``B``) or a batch of them (leading ``B``); see the module doc."""

    user: Tensor  # [B] int64
    event: Tensor  # [B] int64, row in the engagements table
    target: Tensor  # [B] int64
    target_ts: Tensor  # [B] int64
    source_topic: Tensor  # [B] int64, -1 = none
    history: Tensor  # [B, L] int64, -1 = padding, right-aligned
    history_valid: Tensor  # [B, L] bool
    history_negative: Tensor  # [B, L] bool
    followed: Tensor  # [B, T] int64, -1 = padding
    history_ts: Tensor | None  # [B, L] int64, -1 = padding; None when not stored
