"""Condition association as injected parts: which of the K user embeddings a target trains.

Both strategies are small `nn.Module` s (so `model.eval()` reaches them) behind the
`AssociationStrategy` protocol and return the functional `Association` (the
selected slot ``[B]``, the selected embedding ``[B, D]`` and the weights ``[B, K]``).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor, nn

from multiembed.nn.functional import Association, argmax_association, gumbel_association
from multiembed.nn.functional._checks import raise_problems


class AssociationStrategy(Protocol):
    """Call: ``(user_emb [B, K, D], target_emb [B, D], slot_mask [B, K]) -> Association``.

    ``slot_mask`` is bool, False for unused slots (never selected); every row has at
    least one True. Eval-mode calls are deterministic.
    """

    def __call__(self, user_emb: Tensor, target_emb: Tensor, slot_mask: Tensor) -> Association: ...


class ArgmaxAssociation(nn.Module):
    """Arg-max association (Eq. 8): the slot with the highest o_u^j . o_y, in training and eval.

    Gradient reaches only the selected embedding. The paper's choice for DCM and MIND.

    Example:
        >>> user = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> ArgmaxAssociation()(user, torch.tensor([[0.2, 0.9]]), torch.tensor([[True, True]])).slot
        tensor([1])
    """

    def forward(self, user_emb: Tensor, target_emb: Tensor, slot_mask: Tensor) -> Association:
        """Select j* = argmax_j o_u^j . o_y among the used slots."""
        return argmax_association(user_emb, target_emb, slot_mask)


class GumbelAssociation(nn.Module):
    """Straight-through Gumbel-softmax association in training, arg-max in eval (Section 3.2.4).

    In training the slot is sampled from softmax_j(s * o_u^j . o_y) with Gumbel noise
    from the injected ``generator``; the forward pass uses exactly the sampled
    embedding and the backward pass sends gradient to every used slot through the
    relaxed probabilities softmax((s * a + g) / tau).

    The scale s (``logit_scale``) matters: unit-norm embeddings give affinities in
    [-1, 1], which unit Gumbel noise swamps, so with s = 1 the slot is close to a
    uniform draw, every slot learns the same targets and the embeddings collapse
    (measured on a toy task: mean pairwise cosine 0.999, loss no better than one
    embedding). Setting s to the loss's 1 / temperature samples slots from the
    model's own softmax over them; `build_model` does so. The paper needs it for self-attention and
    interest-token extractors, which collapse under a plain arg-max. In eval the
    choice is the arg-max, so evaluation is deterministic.

    Args:
        tau: Gumbel-softmax temperature, > 0; a trainer may anneal it by assigning
            ``self.tau``.
        generator: the only source of the noise (keep its state in checkpoints).
        logit_scale: s, multiplies the affinities before the noise is added, > 0.

    Example:
        >>> user = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> gen = torch.Generator().manual_seed(0)
        >>> gumbel = GumbelAssociation(tau=0.5, generator=gen, logit_scale=20.0)
        >>> chosen = gumbel(user, torch.tensor([[0.2, 0.9]]), torch.tensor([[True, True]]))
        >>> chosen.embedding.shape, chosen.probs.shape
        (torch.Size([1, 2]), torch.Size([1, 2]))
    """

    def __init__(self, *, tau: float, generator: torch.Generator, logit_scale: float = 1.0) -> None:
        super().__init__()
        problems = [
            f"{name} = {value!r}: must be > 0 and finite"
            for name, value in (("tau", tau), ("logit_scale", logit_scale))
            if not (isinstance(value, int | float) and 0 < value < math.inf)
        ]
        if not isinstance(generator, torch.Generator):
            problems.append(f"generator = {generator!r}: must be a torch.Generator")
        raise_problems("GumbelAssociation", problems)
        self.tau = float(tau)
        self.logit_scale = float(logit_scale)
        self.generator = generator

    def forward(self, user_emb: Tensor, target_emb: Tensor, slot_mask: Tensor) -> Association:
        """Sample (training) or pick the arg-max (eval) among the used slots."""
        if not self.training:
            return argmax_association(user_emb, target_emb, slot_mask)
        # Scaling the target scales every affinity o_u^j . o_y and leaves the returned
        # embedding (taken from user_emb) as is.
        return gumbel_association(
            user_emb,
            target_emb * self.logit_scale,
            tau=self.tau,
            generator=self.generator,
            slot_mask=slot_mask,
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau}, logit_scale={self.logit_scale}"
