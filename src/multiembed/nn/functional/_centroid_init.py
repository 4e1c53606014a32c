"""Where routing starts: validity-aware farthest point seeds (Eq. 5, 6) and Gaussian centroids."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from multiembed.nn.functional._checks import (
    check_at_least,
    check_generator,
    check_positive,
    check_shapes,
)


class Seeds(NamedTuple):
    """The items chosen as initial centroids.

    Attributes:
        indices: `[B, K]` int64 positions into the sequence (non-differentiable); gather
            `e` at them to get the initial centroids.
        is_real: `[B, K]` bool, False for a slot that had no unchosen real item left and
            repeats an earlier choice; pass it on as the routing `slot_mask`.
    """

    indices: Tensor
    is_real: Tensor


def farthest_point_init(
    e: Tensor,
    mask: Tensor,
    k: int,
    *,
    generator: torch.Generator | None,
    valid: Tensor | None = None,
) -> Seeds:
    """Validity-aware farthest point initialisation (Eq. 5 and 6).

    The first seed is drawn uniformly among the eligible items; each next seed is
    the eligible item least similar to the seeds so far, i* = argmin_i max_j c_j^T e_i
    (Eq. 5, dot-product similarity, ties to the lowest position). Eligibility, in
    order of preference:

    1. real, valid items not chosen yet (Eq. 6: invalid items, with missing
       features or negative actions, are never chosen while a valid one remains);
    2. real items not chosen yet, invalid ones included, once the valid ones are
       used up: a real item beats no item;
    3. none left: the slot repeats the first seed and is flagged not real
       (`is_real` False), so routing gives it zero weight and serving skips it.

    Padding is never chosen. A sequence with no real item at all gets index 0
    everywhere and every slot flagged not real. Eq. 6 as printed (an arg-max of a
    minimum, with the indicator multiplying the similarity) would favour items
    close to the seeds; we follow the text, which is Eq. 5 over valid items.

    The first draw uses one uniform number per sequence, taken as a rank among
    the eligible items, so it depends on the generator and the row, not on how
    much padding surrounds the sequence. With `generator=None` the choice is
    deterministic: the last eligible position, the most recent item when
    sequences run oldest to newest.

    Args:
        e: `[B, L, D]` item embeddings (read without gradient).
        mask: `[B, L]` bool, True for real items, False for padding.
        k: number of seeds K, at least 1; may exceed the number of real items.
        generator: source of the first draw, or None for the deterministic choice.
        valid: `[B, L]` bool validity indicator I_valid; None means every real item is valid.

    Returns:
        `Seeds` with indices `[B, K]` and is_real `[B, K]`.

    Example:
        >>> e = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [0.0, 0.0]]])
        >>> mask = torch.tensor([[True, True, True, False]])
        >>> farthest_point_init(e, mask, 3, generator=None)
        Seeds(indices=tensor([[2, 0, 1]]), is_real=tensor([[True, True, True]]))
        >>> farthest_point_init(e, mask, 4, generator=None).is_real
        tensor([[ True,  True,  True, False]])
    """
    where = "farthest_point_init"
    sizes = check_shapes(
        where, e=(e, "B L D:float"), mask=(mask, "B L:bool"), valid=(valid, "B L:bool")
    )
    check_at_least(where, "k", k, 1)
    check_at_least(where, "sequence length L", sizes["L"], 1)
    if generator is not None:
        check_generator(where, generator)

    e = e.detach()
    b, length = e.shape[0], e.shape[1]  # not `sizes`: a traced graph (ONNX) keeps B dynamic
    preferred = mask if valid is None else mask & valid
    chosen = torch.zeros_like(mask)
    closest = e.new_full((b, length), float("-inf"))  # max_j c_j^T e_i over seeds so far
    rows = torch.arange(b, device=e.device)
    positions = torch.arange(length, device=e.device)
    indices: list[Tensor] = []
    is_real: list[Tensor] = []
    for slot in range(k):
        # the unchosen valid items if any remain, else the unchosen real ones: [B, L]
        fresh = preferred & ~chosen
        pool = torch.where(fresh.any(dim=-1, keepdim=True), fresh, mask & ~chosen)
        if slot == 0:
            pick = _first_pick(pool, generator)
            fallback = torch.zeros_like(pick)
        else:
            pick = closest.masked_fill(~pool, float("inf")).argmin(dim=-1)  # Eq. 5
            fallback = indices[0]
        found = pool.any(dim=-1)  # [B]
        pick = torch.where(found, pick, fallback)
        indices.append(pick)
        is_real.append(found)
        if slot == k - 1:  # no seed comes after the last: nothing left to measure against
            break
        # a comparison, not chosen[rows, pick] = True, which exports to ONNX as a scatter
        # behind a dozen shape operations per seed
        hit = positions == pick.unsqueeze(-1)  # [B, L]: the pick as a mask
        chosen = chosen | hit
        seed = _picked(e, hit, rows, pick)  # [B, D]
        # an elementwise product and sum: a batched matrix-vector product of [L, D] by [D]
        # per row is several times slower on a CPU
        similarity = (e * seed.unsqueeze(1)).sum(dim=-1)  # [B, L]
        closest = torch.maximum(closest, similarity)
    return Seeds(indices=torch.stack(indices, dim=1), is_real=torch.stack(is_real, dim=1))


def _picked(e: Tensor, hit: Tensor, rows: Tensor, pick: Tensor) -> Tensor:
    """``e [B, L, D]`` at position ``pick [B]`` of each of its `rows` (``arange(B)``;
    ``hit [B, L]``: the pick as a mask): ``[B, D]``.

    Eager mode indexes. A traced graph sums the masked rows instead, the same values
    (one term, the rest exact zeros): indexing and `gather` export to ONNX with a
    dozen shape operations per seed, each worth more than its arithmetic to
    onnxruntime at a batch of one.
    """
    if torch.onnx.is_in_onnx_export():
        return torch.where(hit.unsqueeze(-1), e, 0.0).sum(dim=1)
    return e[rows, pick]


def _first_pick(pool: Tensor, generator: torch.Generator | None) -> Tensor:
    """`[B, L]` eligible items -> `[B]` position of the first seed (0 where none is eligible)."""
    count = pool.sum(dim=-1)  # [B]
    if generator is None:
        rank = count - 1
    else:
        uniform = torch.rand(
            count.shape, generator=generator, device=generator.device, dtype=torch.float64
        )
        rank = torch.minimum((uniform.to(pool.device) * count).floor().long(), count - 1)
    position_rank = pool.long().cumsum(dim=-1) - 1  # rank of each eligible item, [B, L]
    hit = pool & (position_rank == rank.unsqueeze(-1))
    return hit.long().argmax(dim=-1)


def gaussian_centroids(
    b: int,
    k: int,
    d: int,
    *,
    generator: torch.Generator,
    std: float = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """MIND's Gaussian initial centroids, N(0, std^2), drawn from `generator` only.

    The same generator state gives the same centroids, so an evaluation forward
    that seeds a fresh generator is deterministic.

    Args:
        b: batch size B.
        k: number of interests K.
        d: dimension D.
        generator: the only source of randomness.
        std: standard deviation of each coordinate.
        dtype: floating dtype of the result (None: torch's default).
        device: where the result lives (None: the generator's device).

    Returns:
        `[B, K, D]` centroids.

    Example:
        >>> first = gaussian_centroids(2, 3, 4, generator=torch.Generator().manual_seed(0))
        >>> again = gaussian_centroids(2, 3, 4, generator=torch.Generator().manual_seed(0))
        >>> first.shape, bool(torch.equal(first, again))
        (torch.Size([2, 3, 4]), True)
    """
    where = "gaussian_centroids"
    check_at_least(where, "b", b, 1)
    check_at_least(where, "k", k, 1)
    check_at_least(where, "d", d, 1)
    check_positive(where, "std", std)
    check_generator(where, generator)
    draws = torch.randn((b, k, d), generator=generator, device=generator.device, dtype=dtype)
    return (draws * std).to(device if device is not None else generator.device)
