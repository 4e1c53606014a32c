"""Dynamic routing: vanilla capsule routing (MIND, Eq. 1-3) and single-assignment routing (Eq. 7).

Both run the same loop. Per iteration, item i's routing weights over the K
centroids come from the affinities a_ij = c_j^T u_i, and each centroid is then
rebuilt as c_j = squash(sum_i b_ij u_i). They differ in where u_i comes from
(MIND maps e_i through a shared bilinear matrix S; DCM uses e_i as is, since
Eq. 4 already summarised it) and in how affinities become weights (a softmax
over centroids, or that softmax kept only at the winning centroid).

Following the paper, b_ij is recomputed from the current centroids at every
iteration (not accumulated across iterations) and no gradient is stopped, so
gradients reach the items (and S) through every iteration.

Affinity: the paper's a_ij = c_j^T u_i (``"dot"``) or ``"cosine"``, a_ij = c_j^T u_i /
||c_j||, the item's projection on the centroid's direction. Squashing makes ||c_j||
grow with the mass a cluster holds (about 0.2 for a lone seed of norm 0.5, near 1
for a cluster of dozens), so under ``"dot"`` the heaviest cluster outbids the others
for every item that leans its way, and after a few rounds most of a user's clusters
are empty: on public logs, 1.2-1.8 of 4 clusters survive. ``"cosine"`` lets each item
join the centroid it points to, whatever that cluster's size; the centroids
themselves, and so the importance, are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from multiembed.nn.functional._checks import (
    check_at_least,
    check_floating,
    check_shapes,
)

Affinity = Literal["dot", "cosine"]
"""How an item's affinity to a centroid is read: c_j^T u_i, or its cosine-like
c_j^T u_i / ||c_j|| (see the module docstring)."""


class Routing(NamedTuple):
    """The result of dynamic routing for a batch of sequences.

    Attributes:
        centroids: `[B, K, D]` interest centroids c_j after the last iteration; zero for
            slots flagged not real.
        weights: `[B, L, K]` routing weights b_ij of the last iteration, the ones the
            returned centroids were built from; zero at padding and at masked slots.
        importance: `[B, K]` sum over items of b_ij, the mass routed to each interest;
            serving splits the retrieval budget by it (Section 3.5).
    """

    centroids: Tensor
    weights: Tensor
    importance: Tensor


def squash(v: Tensor, dim: int = -1, eps: float = 1e-8) -> Tensor:
    """Capsule squashing (Eq. 3): ||v||^2 / (1 + ||v||^2) * v / ||v||.

    Keeps the direction of `v` and maps its norm into [0, 1), so the norm can
    read as the existence of an interest. The norm in the denominator is clamped
    below at `eps`, so the zero vector maps to zero with a zero (finite) gradient;
    above `eps` the result is the exact formula.

    Args:
        v: vectors of any shape `[..., D]` (floating).
        dim: the dimension that holds the vector.
        eps: the smallest norm divided by.

    Returns:
        A tensor shaped like `v`.

    Example:
        >>> squash(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([[0.5769, 0.7692],
                [0.0000, 0.0000]])
    """
    check_floating("squash", "v", v)
    squared_norm = v.pow(2).sum(dim=dim, keepdim=True)
    norm = squared_norm.clamp_min(eps * eps).sqrt()
    return squared_norm / (1 + squared_norm) * (v / norm)


def capsule_routing(
    e: Tensor,
    mask: Tensor,
    init_centroids: Tensor,
    *,
    iterations: int,
    bilinear: Tensor | None = None,
    slot_mask: Tensor | None = None,
    affinity: Affinity = "dot",
    padding_zeroed: bool = False,
) -> Routing:
    """Vanilla MIND dynamic routing (Eq. 1 and 2).

    With u_i = S e_i: b_ij = softmax_j(c_j^T u_i), then c_j = squash(sum_i b_ij u_i),
    repeated `iterations` times from `init_centroids` (MIND draws them from a
    Gaussian: see `gaussian_centroids`).

    Args:
        e: `[B, L, D]` item embeddings of the sequences.
        mask: `[B, L]` bool, True for real items, False for padding. Padding
            contributes nothing, whatever its values.
        init_centroids: `[B, K, D_out]` centroids to start from.
        iterations: number of routing iterations, at least 1.
        bilinear: `[D, D_out]` shared bilinear map, applied as u_i = e_i @ bilinear
            (the paper's S e_i with S = bilinear^T); None means the identity.
        slot_mask: `[B, K]` bool, False for slots that are not real (for example
            seeds repeated on short sequences); they are left out of the softmax and
            end with zero weight, zero importance and a zero centroid. None: all real.
        affinity: ``"dot"`` (MIND's) or ``"cosine"`` (see the module docstring).
        padding_zeroed: the caller has already zeroed `e` at padding (it reads the
            same masked items several times); skips the copy that does it here.

    Returns:
        A `Routing` with centroids `[B, K, D_out]`, weights `[B, L, K]` and importance `[B, K]`.

    Example:
        >>> e = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]])
        >>> mask = torch.tensor([[True, True, False]])
        >>> routing = capsule_routing(e, mask, torch.eye(2)[None], iterations=3)
        >>> routing.weights[0, 2]  # padding gets no weight
        tensor([0., 0.])
        >>> round(routing.importance.sum().item(), 4)  # each real item spreads one unit
        2.0
    """
    where = "capsule_routing"
    check_shapes(
        where,
        e=(e, "B L D:float"),
        mask=(mask, "B L:bool"),
        bilinear=(bilinear, "D D_out"),
        init_centroids=(init_centroids, "B K D_out" if bilinear is not None else "B K D"),
        slot_mask=(slot_mask, "B K:bool"),
    )
    _check_settings(where, iterations, affinity)
    u_hat = e if bilinear is None else e @ bilinear  # [B, L, D_out]
    return _route(
        u_hat,
        mask,
        init_centroids,
        iterations,
        slot_mask,
        _soft_assignment,
        affinity,
        padding_zeroed,
    )


def single_assignment_routing(
    e: Tensor,
    mask: Tensor,
    init_centroids: Tensor,
    *,
    iterations: int,
    slot_mask: Tensor | None = None,
    affinity: Affinity = "dot",
    padding_zeroed: bool = False,
) -> Routing:
    """Single-assignment routing of the Differentiable Clustering Module (Eq. 7).

    b_ij = 1[j = argmax_k c_k^T e_i] * softmax_j(c_j^T e_i): each item keeps its
    softmax weight only at its nearest centroid, so nearby centroids stop pulling
    each other together. The update is Eq. 2 without the bilinear map,
    c_j = squash(sum_i b_ij e_i), because DCM's items are already summarised by the
    Eq. 4 MLP. Ties pick exactly one centroid (the lowest index). Gradients flow to
    `e` through the kept softmax weight and through the sum; the winner itself is
    a constant.

    Args:
        e: `[B, L, D]` item embeddings of the sequences.
        mask: `[B, L]` bool, True for real items, False for padding (contributes nothing).
        init_centroids: `[B, K, D]` centroids to start from, typically `e` gathered at
            the indices from `farthest_point_init`.
        iterations: number of routing iterations, at least 1.
        slot_mask: `[B, K]` bool, False for slots that are not real; they never win
            and end with zero weight, importance and centroid. None: all real.
        affinity: ``"dot"`` (Eq. 7 as written) or ``"cosine"``, which keeps the heaviest
            cluster from taking every item (see the module docstring).
        padding_zeroed: as in `capsule_routing`.

    Returns:
        A `Routing` with centroids `[B, K, D]`, weights `[B, L, K]` and importance `[B, K]`.

    Example:
        >>> e = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]])
        >>> mask = torch.ones(1, 3, dtype=torch.bool)
        >>> routing = single_assignment_routing(e, mask, e[:, [0, 2]], iterations=2)
        >>> (routing.weights > 0).int()
        tensor([[[1, 0],
                 [1, 0],
                 [0, 1]]], dtype=torch.int32)
    """
    where = "single_assignment_routing"
    check_shapes(
        where,
        e=(e, "B L D:float"),
        mask=(mask, "B L:bool"),
        init_centroids=(init_centroids, "B K D"),
        slot_mask=(slot_mask, "B K:bool"),
    )
    _check_settings(where, iterations, affinity)
    return _route(
        e, mask, init_centroids, iterations, slot_mask, _single_assignment, affinity, padding_zeroed
    )


def significant_slots(importance: Tensor, slot_mask: Tensor, min_share: float) -> Tensor:
    """Used slots holding at least ``min_share`` of the routed mass: ``[B, K]`` bool.

    A cluster seeded by an outlier (farthest-point seeds are outliers first) and
    joined by nothing else is one stray item, not an interest; dropping it keeps
    its embedding out of retrieval. The slot with the most mass is always kept,
    so every row with a used slot keeps one.

    Args:
        importance: ``[B, K]`` routed mass sum_i b_ij per slot (non-negative).
        slot_mask: ``[B, K]`` bool, the slots in use.
        min_share: in [0, 1); 0 keeps every used slot.

    Example:
        >>> importance = torch.tensor([[45.0, 3.0, 1.0, 1.0], [2.0, 2.0, 0.0, 0.0]])
        >>> used = torch.tensor([[True] * 4, [True, True, False, False]])
        >>> significant_slots(importance, used, 0.1).tolist()
        [[True, False, False, False], [True, True, False, False]]
    """
    where = "significant_slots"
    check_shapes(where, importance=(importance, "B K"), slot_mask=(slot_mask, "B K:bool"))
    if not 0.0 <= min_share < 1.0:
        raise ValueError(f"{where}: expected min_share in [0, 1), got {min_share!r}")
    mass = importance.detach() * slot_mask
    total = mass.sum(dim=1, keepdim=True)  # [B, 1]
    keep = slot_mask & (mass >= min_share * total)
    largest = F.one_hot(mass.argmax(dim=1), mass.shape[1]).bool() & slot_mask
    return keep | largest


def weighted_means(
    e: Tensor, mask: Tensor, weights: Tensor, item_weights: Tensor, *, padding_zeroed: bool = False
) -> Tensor:
    """Each cluster's weighted mean item: ``[B, K, D]``, zero for a cluster with no item.

    mu_j = sum_i b_ij w_i e_i / sum_i b_ij w_i: a point among the cluster's items, at
    their scale whatever the cluster's mass (a cluster of one item is that item).

    Args:
        e: ``[B, L, D]`` item summaries (padding values are never read).
        mask: ``[B, L]`` bool, True for a real item.
        weights: ``[B, L, K]`` routing weights b_ij (`Routing.weights`).
        item_weights: ``[B, L]`` positive weight w_i of each item (padding not read).
        padding_zeroed: `e` is already zero at padding (as in `capsule_routing`).

    Example:
        >>> e = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> both, mask = torch.ones(1, 2, 1), torch.ones(1, 2, dtype=torch.bool)
        >>> weighted_means(e, mask, both, torch.tensor([[1.0, 3.0]])).squeeze()
        tensor([0.2500, 0.7500])
    """
    where = "weighted_means"
    check_shapes(
        where,
        e=(e, "B L D:float"),
        mask=(mask, "B L:bool"),
        weights=(weights, "B L K"),
        item_weights=(item_weights, "B L"),
    )
    w = weights * torch.where(mask, item_weights, 0.0).unsqueeze(-1)  # [B, L, K]
    tiny = torch.finfo(w.dtype).tiny
    real = e if padding_zeroed else torch.where(mask.unsqueeze(-1), e, 0.0)
    pooled = torch.einsum("blk,bld->bkd", w, real)
    return pooled / w.sum(dim=1).clamp_min(tiny).unsqueeze(-1)


def weighted_centroids(
    e: Tensor, mask: Tensor, weights: Tensor, item_weights: Tensor, *, padding_zeroed: bool = False
) -> Tensor:
    """Centroids that weight each cluster's items: ``[B, K, D]``.

    c_j = squash(m_j * mu_j) with mu_j the cluster's `weighted_means` and
    m_j = sum_i b_ij: the weighted mean at the routed mass of the plain
    c_j = squash(sum_i b_ij e_i) that routing returns (equal weights give exactly that).

    Args: as `weighted_means`.

    Example:
        >>> e = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> both, mask = torch.ones(1, 2, 1), torch.ones(1, 2, dtype=torch.bool)
        >>> w = torch.tensor([[1.0, 3.0]])                   # mean (0.25, 0.75), mass 2
        >>> weighted_centroids(e, mask, both, w).squeeze()
        tensor([0.2259, 0.6776])
    """
    means = weighted_means(e, mask, weights, item_weights, padding_zeroed=padding_zeroed)
    return squash(means * weights.sum(dim=1).unsqueeze(-1))


def _check_settings(where: str, iterations: int, affinity: Affinity) -> None:
    check_at_least(where, "iterations", iterations, 1)
    if affinity not in get_args(Affinity):
        raise ValueError(
            f"{where}: expected affinity in {list(get_args(Affinity))}, got {affinity!r}"
        )


def _soft_assignment(affinity: Tensor) -> Tensor:
    """Eq. 1: softmax over centroids. `[B, K, L] -> [B, K, L]`."""
    return affinity.softmax(dim=1)


def _single_assignment(affinity: Tensor) -> Tensor:
    """Eq. 7: the softmax weight kept at the arg-max centroid only. `[B, K, L] -> [B, K, L]`."""
    # max(...).indices is argmax (the first of ties), and far faster along a strided axis
    first = affinity.max(dim=1, keepdim=True).indices  # [B, 1, L]
    slots = torch.arange(affinity.shape[1], device=affinity.device).view(1, -1, 1)
    # a comparison rather than a scatter: the same 0 / 1, in a few ONNX operations
    winner = (slots == first).to(affinity.dtype)  # [B, K, L]
    return affinity.softmax(dim=1) * winner


def _route(
    u_hat: Tensor,
    mask: Tensor,
    centroids: Tensor,
    iterations: int,
    slot_mask: Tensor | None,
    assign: Callable[[Tensor], Tensor],
    affinity: Affinity,
    padding_zeroed: bool,
) -> Routing:
    """The routing loop shared by both variants; `assign` turns affinities into weights.

    Affinities and weights are kept as ``[B, K, L]``: on a CPU the softmax and arg-max
    over a few centroids, and the batched products with ``u_hat``, run several times
    faster along that layout than along ``[B, L, K]`` (the softmax about 15x at K = 4,
    L = 50). `Routing.weights` is returned as ``[B, L, K]``, a transposed view.
    """
    keep_item = mask.unsqueeze(1)  # [B, 1, L]
    if not padding_zeroed:  # so that even non-finite padding values cannot leak in
        u_hat = torch.where(mask.unsqueeze(-1), u_hat, 0.0)
    keep_slot = (
        torch.ones_like(centroids[..., 0], dtype=torch.bool) if slot_mask is None else slot_mask
    ).unsqueeze(-1)  # [B, K, 1]
    keep = (keep_slot & keep_item).to(u_hat.dtype)  # [B, K, L]
    # One centroid: a softmax over one slot is 1 and that slot wins, so every round gives
    # each real item weight 1 and the affinities no gradient; one product is all of it.
    several = centroids.shape[1] > 1
    weights = keep  # [B, K, L]
    for _ in range(iterations if several else 1):
        if several:
            # c_j^T u_i, or with "cosine" (c_j / max(||c_j||, eps))^T u_i: an empty slot stays 0
            reading = centroids if affinity == "dot" else F.normalize(centroids, dim=-1, eps=1e-8)
            a = torch.bmm(reading, u_hat.transpose(1, 2))  # [B, K, L] (bf16 under autocast)
            # A finite floor rather than -inf: a row whose slots are all masked must not be NaN.
            floor = torch.finfo(a.dtype).min
            weights = assign(torch.where(keep_slot, a, floor)) * keep  # [B, K, L]
        centroids = squash(torch.bmm(weights, u_hat))  # [B, K, D]
    return Routing(
        centroids=centroids, weights=weights.transpose(1, 2), importance=weights.sum(dim=2)
    )
