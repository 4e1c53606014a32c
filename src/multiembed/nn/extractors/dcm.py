"""The Differentiable Clustering Module (Section 3.2.2): farthest point seeds, then routing."""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

import torch
from torch import Tensor, nn

from multiembed.nn.extractors._common import (
    check_sequence,
    ensure_a_slot,
    interest_slots,
    masked_softmax,
    recency_attention_scores,
    zero_padding,
)
from multiembed.nn.extractors.base import Interests, RoutingFn
from multiembed.nn.functional import (
    Affinity,
    capsule_routing,
    farthest_point_init,
    gaussian_centroids,
    significant_slots,
    single_assignment_routing,
    weighted_centroids,
    weighted_means,
)
from multiembed.nn.functional._checks import raise_problems, size_problems

InitName = Literal["farthest_point", "gaussian"]
"""Where DCM's routing starts: farthest point seeds (Eq. 5), or MIND's Gaussian draw."""

PoolName = Literal["mean", "attention"]
"""How a cluster's centroid weights its items: alike (Eq. 2), or by a learned attention."""

ScaleName = Literal["mass", "items"]
"""A condition's length: its cluster's mass (Eq. 2-3), or its items' scale."""

_START_BLIND = (single_assignment_routing, capsule_routing)
"""Routing functions that give one centroid every real item, whatever its start."""

RECENCY_BUCKETS = 64
"""Rows of the attention pool's recency table (as `SingleExtractor`'s)."""


class Clustering(NamedTuple):
    """How `DCMExtractor` seeds, routes and keeps its clusters; the defaults are the paper's.

    Attributes:
        iterations: routing rounds, at least 1.
        validity_aware: mask invalid items out of the initialisation (Eq. 6).
        init: ``"farthest_point"`` (Eq. 5) or ``"gaussian"`` (MIND's, for the ablation).
        routing: the routing function, `single_assignment_routing` (DCM) by default;
            `capsule_routing` gives the vanilla-routing ablation of Section 4.4.
        affinity: how routing reads an item's affinity to a centroid: ``"dot"``, Eq. 7 as
            written, or ``"cosine"``, against the centroid's direction only, so that a
            heavy cluster does not take every item from the lighter ones (see
            `single_assignment_routing`).
        min_share: a cluster holding less than this share of the routed mass is
            dropped (`significant_slots`): farthest-point seeds pick outliers first, and
            a stray item is not an interest to retrieve for. 0 keeps every cluster.
        pool: ``"mean"``: the centroid is the routed sum of its items (Eq. 2, the
            paper); ``"attention"``: each item also weighs softmax(s)_i with
            s_i = v^T tanh(W e_i + b + r_rank(i)), the learned recency-aware scores of
            `SingleExtractor` (`weighted_centroids`, the routed mass kept). With ``v``
            near zero at first it starts as the mean; a user whose items all fall in
            one cluster then gets the single-embedding model's query.
        scale: ``"mass"``: a condition is the squashed routed sum (Eq. 2-3, the paper),
            so its length grows with its cluster's mass: about ||e||^2 for a cluster of
            one item, which the next layer's bias then outweighs, and a user's small
            clusters all come out alike; ``"items"``: it is the cluster's weighted mean
            (`weighted_means`), at its items' scale whatever the mass, which the
            importance still carries.
    """

    iterations: int = 3
    validity_aware: bool = True
    init: InitName = "farthest_point"
    routing: RoutingFn = single_assignment_routing
    affinity: Affinity = "dot"
    min_share: float = 0.0
    pool: PoolName = "mean"
    scale: ScaleName = "mass"


class DCMExtractor(nn.Module):
    """DCM: validity-aware farthest point initialisation (Eq. 5, 6) + single-assignment
    routing (Eq. 7) over the summarised items themselves (no bilinear map).

    Seeds: the first is a uniformly drawn eligible item in training (from the injected
    ``generator``) and the most recent eligible item in eval, so eval forwards are
    deterministic; each next seed is the eligible item least similar to the seeds so
    far. With ``validity_aware`` invalid items (``valid`` False) are chosen only once
    the valid ones run out (Eq. 6); without it every real item is eligible (ablation).
    The routing then runs over every real item, as in the paper, where validity only
    concerns the initialisation.

    With ``init = "gaussian"`` routing starts from MIND's N(0, 1) centroids instead
    (fresh per sequence in training, one fixed draw, the ``eval_init`` buffer, in
    eval): Table 6's rows without VA-FPI, where DCM differs from MIND only in routing
    over the items themselves, without the bilinear map.

    Slots: a sequence with fewer real items than ``K`` leaves the extra slots unused
    (zero centroid, zero importance); one with no real item keeps slot 0 (zero centroid).
    A cluster that the routing leaves empty (its seed's item joined another cluster,
    as repeated items do) is unused too: it has no centroid to retrieve with.

    Args:
        dim: width ``D`` of the item summaries and of the centroids.
        k: number of interests ``K`` (the paper's K_im = 7).
        generator: source of the training-time first seed.
        clustering: the seeding, routing and pruning settings (`Clustering`); each is
            also an attribute of the extractor.

    Shapes: ``e [B, L, D], mask [B, L], valid [B, L]`` -> `Interests` with conditions
    ``[B, K, D]`` (squashed, or means: ``clustering.scale``), slot_mask and importance
    ``[B, K]`` (sum_i b_ij).

    Example:
        >>> e = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]])
        >>> mask = torch.ones(1, 4, dtype=torch.bool)
        >>> dcm = DCMExtractor(dim=2, k=2, generator=torch.Generator().manual_seed(0)).eval()
        >>> interests = dcm(e, mask, mask)
        >>> interests.importance.round(decimals=2)     # two clusters of two items each
        tensor([[1.2500, 1.2500]])
    """

    eval_init: Tensor

    def __init__(
        self,
        *,
        dim: int,
        k: int,
        generator: torch.Generator,
        clustering: Clustering = Clustering(),
    ) -> None:
        super().__init__()
        c = clustering
        problems = size_problems(dim=dim, k=k, iterations=c.iterations)
        if not isinstance(generator, torch.Generator):
            problems.append(f"generator = {generator!r}: must be a torch.Generator")
        if not callable(c.routing):
            problems.append(f"routing = {c.routing!r}: must be a routing function")
        if not (isinstance(c.min_share, int | float) and 0.0 <= c.min_share < 1.0):
            problems.append(f"min_share = {c.min_share!r}: must be in [0, 1)")
        if c.init not in get_args(InitName):
            problems.append(f"init = {c.init!r}: must be one of {list(get_args(InitName))}")
        if c.affinity not in get_args(Affinity):
            problems.append(f"affinity = {c.affinity!r}: must be one of {list(get_args(Affinity))}")
        if c.pool not in get_args(PoolName):
            problems.append(f"pool = {c.pool!r}: must be one of {list(get_args(PoolName))}")
        if c.scale not in get_args(ScaleName):
            problems.append(f"scale = {c.scale!r}: must be one of {list(get_args(ScaleName))}")
        raise_problems("DCMExtractor", problems)
        self.dim = dim
        self.k = k
        self.iterations = c.iterations
        self.validity_aware = bool(c.validity_aware)
        self.generator = generator
        self.routing = c.routing
        self.min_share = float(c.min_share)
        self.init = c.init
        self.affinity: Affinity = c.affinity
        self.pool: PoolName = c.pool
        self.scale: ScaleName = c.scale
        if c.pool == "attention":  # W, b; r; v, started as `SingleExtractor` starts them
            self.pool_proj = nn.Linear(dim, dim)
            self.pool_recency = nn.Embedding(RECENCY_BUCKETS, dim)
            self.pool_score = nn.Linear(dim, 1, bias=False)
            nn.init.xavier_uniform_(self.pool_proj.weight)
            nn.init.zeros_(self.pool_proj.bias)
            nn.init.trunc_normal_(self.pool_recency.weight, std=0.02)
            nn.init.trunc_normal_(self.pool_score.weight, std=0.02)
        if c.init == "gaussian":
            draw = gaussian_centroids(1, k, dim, generator=generator)[0]
            self.register_buffer("eval_init", draw.to(torch.get_default_dtype()))

    def forward(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor | None = None,
        padding_zeroed: bool = False,
    ) -> Interests:
        """Cluster the sequence into ``K`` interests (see the class docstring for shapes)."""
        check_sequence("DCMExtractor", self.dim, e, mask, valid)
        # padding zeroed once for the seeds, the routing, the attention pool and the
        # means, which all read the real items
        real = zero_padding(e, mask, padding_zeroed=padding_zeroed)  # [B, L, D]
        init, is_real = self._start(real, mask, valid)  # [B, K, D], [B, K]
        routing = self.routing(
            real,
            mask,
            init,
            iterations=self.iterations,
            slot_mask=is_real,
            affinity=self.affinity,
            padding_zeroed=True,
        )
        item_weights = self._item_weights(real, mask)  # [B, L] or None: all alike
        if self.scale == "items":
            alike = torch.ones_like(mask, dtype=e.dtype)
            weights = alike if item_weights is None else item_weights
            means = weighted_means(real, mask, routing.weights, weights, padding_zeroed=True)
            routing = routing._replace(centroids=means)
        elif item_weights is not None:
            centroids = weighted_centroids(
                real, mask, routing.weights, item_weights, padding_zeroed=True
            )
            routing = routing._replace(centroids=centroids)
        used = is_real & (routing.importance > 0)
        if self.min_share > 0 and self.k > 1:  # one slot holds all the mass: nothing to drop
            used = significant_slots(routing.importance, used, self.min_share)
        return Interests(
            routing.centroids * used.unsqueeze(-1),
            ensure_a_slot(used),
            routing.importance * used,
        )

    def _item_weights(self, real: Tensor, mask: Tensor) -> Tensor | None:
        """``[B, L]`` weight of each item in its centroid (the attention pool), or None
        when they weigh alike (the paper's Eq. 2); ``real`` is zero at padding."""
        if self.pool != "attention":
            return None
        scores = recency_attention_scores(
            real, mask, self.pool_proj, self.pool_recency, self.pool_score
        )
        return masked_softmax(scores, mask)  # [B, L]

    def _start(self, e: Tensor, mask: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """The routing's initial centroids ``[B, K, D]`` and which slots are real ``[B, K]``."""
        b, _, d = e.shape
        if self.k == 1 and not self.training and self.routing in _START_BLIND:
            # One centroid (a model serving one embedding): the routing gives it every
            # real item whatever it starts from, and its one seed is real wherever the
            # sequence has a real item, so no seed is searched for. Training still
            # draws its seed, so the generator's stream does not depend on this.
            return e[:, :1], mask.any(dim=1, keepdim=True)
        if self.init == "gaussian":
            if self.training:
                init = gaussian_centroids(b, self.k, d, generator=self.generator, dtype=e.dtype)
            else:
                init = self.eval_init.to(e.dtype).expand(b, self.k, d)
            init, is_real = init.to(e.device), interest_slots(mask, self.k)
        else:
            seeds = farthest_point_init(
                e,
                mask,
                self.k,
                generator=self.generator if self.training else None,
                valid=(valid & mask) if self.validity_aware else None,
            )
            init = e.gather(1, seeds.indices.unsqueeze(-1).expand(b, self.k, d))
            is_real = seeds.is_real
        return init, is_real
