"""MIND's capsule extractor: Gaussian centroids, a shared bilinear map, vanilla routing."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from multiembed.nn.extractors._common import (
    check_sequence,
    ensure_a_slot,
    interest_slots,
)
from multiembed.nn.extractors.base import Interests
from multiembed.nn.functional import capsule_routing, gaussian_centroids
from multiembed.nn.functional._checks import raise_problems, size_problems


class CapsuleExtractor(nn.Module):
    """MIND (Section 3.2.1, Eq. 1-3): ``K`` capsules routed from Gaussian centroids.

    u_i = S e_i with one bilinear matrix S shared by all capsules; b_ij =
    softmax_j(c_j^T u_i); c_j = squash(sum_i b_ij u_i), for ``iterations`` rounds.

    Where routing starts:

    - training: fresh centroids N(0, init_std^2) per sequence, drawn from the injected
      ``generator`` only (keep its state in checkpoints to resume exactly);
    - eval: one fixed ``[K, D]`` draw, the buffer ``eval_init`` taken from the generator
      at construction and saved in the state dict, shared by every sequence. So an
      eval forward is deterministic, and a user's interests do not depend on which
      other users share the batch.

    Slot j is used iff j < max(1, min(K, real items)); unused slots get no routing
    weight and a zero centroid. ``valid`` is not used (validity is DCM's addition).

    Args:
        dim: width ``D`` of the item summaries and of the capsules.
        k: number of interests ``K``.
        generator: source of the training-time initial centroids (and of ``eval_init``).
        iterations: routing rounds, at least 1.
        init_std: standard deviation of the Gaussian centroids.

    Shapes: ``e [B, L, D], mask [B, L], valid [B, L]`` -> `Interests` with conditions
    ``[B, K, D]`` (norm < 1, squashed), slot_mask and importance ``[B, K]`` (sum_i b_ij).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> extractor = CapsuleExtractor(dim=4, k=3, generator=torch.Generator().manual_seed(0))
        >>> e, mask = torch.randn(2, 5, 4), torch.tensor([[True] * 5, [True, True] + [False] * 3])
        >>> interests = extractor.eval()(e, mask, mask)
        >>> interests.conditions.shape, interests.slot_mask.tolist()
        (torch.Size([2, 3, 4]), [[True, True, True], [True, True, False]])
    """

    eval_init: Tensor

    def __init__(
        self,
        *,
        dim: int,
        k: int,
        generator: torch.Generator,
        iterations: int = 3,
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        problems = size_problems(dim=dim, k=k, iterations=iterations)
        if not isinstance(generator, torch.Generator):
            problems.append(f"generator = {generator!r}: must be a torch.Generator")
        if not (isinstance(init_std, int | float) and 0 < init_std < math.inf):
            problems.append(f"init_std = {init_std!r}: must be > 0 and finite")
        raise_problems("CapsuleExtractor", problems)
        self.dim = dim
        self.k = k
        self.iterations = iterations
        self.init_std = float(init_std)
        self.generator = generator
        self.bilinear = nn.Parameter(torch.empty(dim, dim))  # S^T: u_i = e_i @ bilinear
        eval_init = gaussian_centroids(1, k, dim, generator=generator, std=self.init_std)[0]
        self.register_buffer("eval_init", eval_init.to(torch.get_default_dtype()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform S (``eval_init`` is kept: it is drawn once, at construction)."""
        nn.init.xavier_uniform_(self.bilinear)

    def forward(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor | None = None,
        padding_zeroed: bool = False,
    ) -> Interests:
        """Route the sequence into ``K`` capsules (see the class docstring for shapes)."""
        check_sequence("CapsuleExtractor", self.dim, e, mask, valid)
        b = e.shape[0]
        slot_mask = interest_slots(mask, self.k)  # [B, K]
        if self.training:
            init = gaussian_centroids(
                b, self.k, self.dim, generator=self.generator, std=self.init_std, dtype=e.dtype
            ).to(e.device)
        else:
            init = self.eval_init.to(e.dtype).expand(b, self.k, self.dim)  # [B, K, D]
        routing = capsule_routing(
            e,
            mask,
            init,
            iterations=self.iterations,
            bilinear=self.bilinear.to(e.dtype),
            slot_mask=slot_mask,
            padding_zeroed=padding_zeroed,
        )
        return Interests(routing.centroids, ensure_a_slot(slot_mask), routing.importance)
