"""Condition association: which of a user's K embeddings a target item trains (Eq. 8).

`argmax_association` is the paper's choice for DCM and MIND. For self-attention
and interest-token extractors an arg-max lets one embedding take every gradient
and the others collapse; `gumbel_association` (Section 3.2.4) keeps the hard
choice in the forward pass but sends gradient to every slot through a
straight-through Gumbel softmax (Jang et al., 2017). Both return an `Association`,
so a model takes either one as an injected part.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from multiembed.nn.functional._checks import (
    check_generator,
    check_positive,
    check_shapes,
)


class Association(NamedTuple):
    """The user embedding chosen for each target.

    Attributes:
        slot: `[B]` int64 selected slot j* (never a masked slot).
        embedding: `[B, D]` the selected user embedding, equal to `user_emb[b, slot[b]]`.
        probs: `[B, K]` the weights behind the choice: the hard one-hot for the
            arg-max, the soft Gumbel-softmax probabilities for the Gumbel variant.
    """

    slot: Tensor
    embedding: Tensor
    probs: Tensor


def argmax_association(
    user_emb: Tensor, target_emb: Tensor, slot_mask: Tensor | None = None
) -> Association:
    """Arg-max association (Eq. 8): j* = argmax_j o_u^j . o_y.

    Gradient reaches only the selected embedding. Ties pick the lowest slot.

    Args:
        user_emb: `[B, K, D]` the K user embeddings o_u^j.
        target_emb: `[B, D]` the target item embeddings o_y.
        slot_mask: `[B, K]` bool, False for slots that must never be selected; every
            row needs at least one True. None: all slots eligible.

    Returns:
        An `Association` with slot `[B]`, embedding `[B, D]` and one-hot probs `[B, K]`.

    Example:
        >>> user = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> argmax_association(user, torch.tensor([[0.2, 0.9]]))
        Association(slot=tensor([1]), embedding=tensor([[0., 1.]]), probs=tensor([[0., 1.]]))
    """
    affinity = _affinity("argmax_association", user_emb, target_emb, slot_mask)
    slot = affinity.argmax(dim=-1)  # [B]
    probs = F.one_hot(slot, affinity.shape[-1]).to(user_emb.dtype)
    rows = torch.arange(user_emb.shape[0], device=user_emb.device)
    return Association(slot=slot, embedding=user_emb[rows, slot], probs=probs)


def gumbel_association(
    user_emb: Tensor,
    target_emb: Tensor,
    *,
    tau: float,
    generator: torch.Generator,
    slot_mask: Tensor | None = None,
) -> Association:
    """Straight-through Gumbel-softmax association (Section 3.2.4).

    With affinities a_j = o_u^j . o_y and Gumbel noise g_j drawn from `generator`,
    the soft probabilities are p = softmax((a + g) / tau) and the selected slot is
    argmax_j (a_j + g_j), a sample from softmax(a). The forward pass uses the hard
    one-hot h, so the embedding is exactly one slot; the backward pass uses
    h + p - stop_gradient(p), so every slot gets gradient through p. Meant for
    training; evaluation should use `argmax_association`.

    Args:
        user_emb: `[B, K, D]` the K user embeddings o_u^j.
        target_emb: `[B, D]` the target item embeddings o_y.
        tau: Gumbel-softmax temperature, > 0 (smaller: p closer to one-hot).
        generator: the only source of the noise.
        slot_mask: `[B, K]` bool, False for slots that must never be selected; every
            row needs at least one True. None: all slots eligible.

    Returns:
        An `Association` with slot `[B]`, embedding `[B, D]` and soft probs `[B, K]`.

    Example:
        >>> user = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> gen = torch.Generator().manual_seed(0)
        >>> chosen = gumbel_association(user, torch.tensor([[0.2, 0.9]]), tau=1.0, generator=gen)
        >>> bool(torch.equal(chosen.embedding, user[0, chosen.slot]))
        True
    """
    where = "gumbel_association"
    check_positive(where, "tau", tau)
    check_generator(where, generator)
    affinity = _affinity(where, user_emb, target_emb, slot_mask)
    tiny = torch.finfo(affinity.dtype).tiny
    uniform = torch.rand(
        affinity.shape, generator=generator, device=generator.device, dtype=affinity.dtype
    ).to(affinity.device)
    noise = -torch.log(-torch.log(uniform.clamp_min(tiny)))  # Gumbel(0, 1), [B, K]
    perturbed = affinity + noise
    probs = (perturbed / tau).softmax(dim=-1)  # [B, K]
    slot = perturbed.argmax(dim=-1)  # [B]
    hard = F.one_hot(slot, affinity.shape[-1]).to(probs.dtype)
    # probs - probs.detach() is exactly zero, so the forward weights are exactly one-hot.
    straight_through = hard + (probs - probs.detach())
    embedding = torch.einsum("bk,bkd->bd", straight_through, user_emb)
    return Association(slot=slot, embedding=embedding, probs=probs)


def _affinity(where: str, user_emb: Tensor, target_emb: Tensor, slot_mask: Tensor | None) -> Tensor:
    """`[B, K]` affinities o_u^j . o_y, -inf at masked slots, after checking the arguments."""
    check_shapes(
        where,
        user_emb=(user_emb, "B K D:float"),
        target_emb=(target_emb, "B D:float"),
        slot_mask=(slot_mask, "B K:bool"),
    )
    affinity = torch.einsum("bkd,bd->bk", user_emb, target_emb)
    if slot_mask is None:
        return affinity
    empty = (~slot_mask.any(dim=-1)).nonzero().flatten().tolist()
    if empty:  # a choice among no slots is undefined
        raise ValueError(
            f"{where}: expected at least one real slot per row in slot_mask, "
            f"got rows with none: {empty[:10]}"
        )
    return affinity.masked_fill(~slot_mask, float("-inf"))
