"""Streaming item frequency estimation for the logQ correction of the sampled softmax (Eq. 9).

Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
Recommendations" (RecSys'19), Algorithm 1: two hashed arrays of size ``H``,

- ``A[h]``: the global step at which bucket ``h`` was last seen,
- ``B[h]``: an exponential moving average of the number of steps between
  two sightings,

updated for every item ``y`` of the batch at step ``t`` as::

    B[h(y)] <- (1 - alpha) * B[h(y)] + alpha * (t - A[h(y)])
    A[h(y)] <- t

and read as ``p(y) = 1 / B[h(y)]``, the expected number of occurrences of ``y``
per batch. Eq. 9 subtracts ``log p`` from every logit; a constant factor (the
batch size) cancels inside the softmax, so this scale is the right one.

Duplicates in a batch. A bucket seen ``c > 1`` times in one batch (a popular
item, or colliding ids) is treated as ``c`` sightings spread evenly over the
gap since it was last seen: the update runs ``c`` times with gap
``(t - A[h]) / c``, which in closed form is::

    B[h] <- (1 - alpha)^c * B[h] + (1 - (1 - alpha)^c) * (t - A[h]) / c

With no duplicates this is Algorithm 1 exactly. The alternatives are worse for
exactly the items logQ matters most for: counting a bucket once per batch makes
``p`` the probability of appearing at all, which saturates at 1 for every head
item; running the literal update ``c`` times with gap 0 shrinks ``B`` by
``(1 - alpha)`` per duplicate and overestimates head items without bound. The
spread update converges to ``1 / B = c`` for an item seen ``c`` times every step.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

# Universal hash h(y) = ((a * (y mod P) + b) mod P) mod H with the Mersenne prime
# P = 2^31 - 1: products stay below 2^62, so int64 arithmetic never overflows on
# any device and the hash is the same everywhere.
_HASH_PRIME = 2_147_483_647
_HASH_MUL = 1_588_635_695
_HASH_ADD = 1_234_567_891


class FrequencyEstimator(nn.Module):
    """Streaming estimate of each item's per-batch frequency and its log (Yi et al., Alg. 1).

    State lives in buffers, so ``state_dict`` / ``load_state_dict`` checkpoint
    and restore it and ``.to(device)`` moves it:

    - ``last_seen`` ``[H]`` int64: ``A``, step of the last sighting (0 = never).
    - ``gap`` ``[H]`` float64: ``B``, average steps between sightings.
    - ``step`` ``[]`` int64: step of the last `update` (0 = none yet).

    Args:
        num_buckets: hash size ``H`` (>= 1).
        num_items: size of the item-id space, when known. If it is at most
            ``num_buckets``, ids index the arrays directly (no collisions) and
            ``H = num_items``; otherwise ids are hashed into ``num_buckets``.
        alpha: learning rate of the moving average, in (0, 1]. The estimate
            remembers about ``1 / alpha`` sightings and its relative spread on a
            stationary stream is about ``sqrt(alpha / 2)``.
        initial_gap: ``B`` before a bucket's first sighting (> 0). The default
            1 gives every item ``log p = 0`` until it has been seen, i.e. no
            correction for items the estimator knows nothing about.
        log_q_min, log_q_max: `log_q` is clipped to this range.

    Example:
        >>> est = FrequencyEstimator(16, num_items=10, alpha=0.5)
        >>> est.update(torch.tensor([3, 3, 7]), step=1)
        >>> est.update(torch.tensor([3]), step=3)
        >>> est.gap[[3, 7]].tolist()          # 3: 0.25*1 + 0.75*0.5 -> 0.5*0.625 + 0.5*2
        [1.3125, 1.0]
        >>> est.log_q(torch.tensor([3, 7, 9]))   # 9 never seen: B = initial_gap = 1
        tensor([-0.2719,  0.0000,  0.0000])
    """

    last_seen: Tensor
    gap: Tensor
    step: Tensor

    def __init__(
        self,
        num_buckets: int,
        *,
        num_items: int | None = None,
        alpha: float = 0.05,
        initial_gap: float = 1.0,
        log_q_min: float = -20.0,
        log_q_max: float = 20.0,
    ) -> None:
        super().__init__()
        where = "FrequencyEstimator"
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
            raise ValueError(f"{where}: expected num_buckets an int >= 1, got {num_buckets!r}")
        if num_items is not None and (
            isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 1
        ):
            raise ValueError(f"{where}: expected num_items None or an int >= 1, got {num_items!r}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"{where}: expected alpha in (0, 1], got {alpha}")
        if not (initial_gap > 0 and math.isfinite(initial_gap)):
            raise ValueError(f"{where}: expected initial_gap > 0 and finite, got {initial_gap}")
        if not log_q_min < log_q_max:
            raise ValueError(
                f"{where}: expected log_q_min < log_q_max, got {log_q_min} and {log_q_max}"
            )
        self.identity = num_items is not None and num_items <= num_buckets
        self.num_buckets = num_items if self.identity and num_items is not None else num_buckets
        self.alpha = float(alpha)
        self.initial_gap = float(initial_gap)
        self.log_q_min = float(log_q_min)
        self.log_q_max = float(log_q_max)
        h = self.num_buckets
        self.register_buffer("last_seen", torch.zeros(h, dtype=torch.int64))
        self.register_buffer("gap", torch.full((h,), self.initial_gap, dtype=torch.float64))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def extra_repr(self) -> str:
        kind = "identity" if self.identity else "hashed"
        return f"num_buckets={self.num_buckets} ({kind}), alpha={self.alpha}"

    def bucket(self, item_ids: Tensor) -> Tensor:
        """Bucket ``h(y)`` of each id: ``[*S]`` int -> ``[*S]`` int64 in ``[0, H)``."""
        ids = self._check_ids("bucket", item_ids)
        if self.identity:
            return ids
        mixed = (ids % _HASH_PRIME * _HASH_MUL + _HASH_ADD) % _HASH_PRIME
        return mixed % self.num_buckets

    @torch.no_grad()
    def update(self, item_ids: Tensor, step: int) -> None:
        """Record the items of the batch seen at global step ``step`` (strictly increasing, >= 1).

        Args:
            item_ids: ``[*S]`` non-negative item ids (any shape; duplicates allowed,
                see the module docstring for how they count).
            step: the global training step of this batch.
        """
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise ValueError(f"FrequencyEstimator.update: expected an int step, got {step!r}")
        step = int(step)
        last = int(self.step)
        if step <= last:
            raise ValueError(
                f"FrequencyEstimator.update: expected step > {last} (the last update), got {step}"
            )
        h = self.bucket(item_ids).reshape(-1)
        if h.numel() == 0:
            self.step.fill_(step)
            return
        buckets, counts = torch.unique(h, return_counts=True)  # [U], [U]
        c = counts.to(torch.float64)
        keep = torch.pow(torch.full_like(c, 1.0 - self.alpha), c)  # (1 - alpha)^c
        elapsed = (step - self.last_seen[buckets]).to(torch.float64)
        self.gap[buckets] = keep * self.gap[buckets] + (1.0 - keep) * elapsed / c
        self.last_seen[buckets] = step
        self.step.fill_(step)

    def probability(self, item_ids: Tensor) -> Tensor:
        """Estimated occurrences per batch ``p = 1 / B[h(y)]``: ``[*S]`` -> ``[*S]`` float64."""
        return 1.0 / self.gap[self.bucket(item_ids)]

    def log_q(self, item_ids: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """``log p`` for the logQ correction (Eq. 9), clipped to ``[log_q_min, log_q_max]``.

        ``[*S]`` ids -> ``[*S]`` tensor of ``dtype``. Subtract it from the logits.
        """
        return torch.log(self.probability(item_ids)).clamp(self.log_q_min, self.log_q_max).to(dtype)

    def forward(self, item_ids: Tensor) -> Tensor:
        """Same as `log_q`."""
        return self.log_q(item_ids)

    def _check_ids(self, method: str, item_ids: Tensor) -> Tensor:
        where = f"FrequencyEstimator.{method}"
        if not isinstance(item_ids, Tensor):
            raise TypeError(f"{where}: expected item_ids a torch.Tensor, got {type(item_ids)}")
        if (
            item_ids.dtype.is_floating_point
            or item_ids.dtype.is_complex
            or item_ids.dtype == torch.bool
        ):
            raise ValueError(f"{where}: expected integer item_ids, got {item_ids.dtype}")
        ids = item_ids.to(device=self.gap.device, dtype=torch.int64)
        if ids.numel():
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or (self.identity and hi >= self.num_buckets):
                bound = f"[0, {self.num_buckets - 1}]" if self.identity else ">= 0"
                raise ValueError(f"{where}: expected item ids {bound}, got ids in [{lo}, {hi}]")
        return ids
