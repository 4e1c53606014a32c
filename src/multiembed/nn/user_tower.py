"""The multi-interest user tower phi(u, c_j): summarise, extract K conditions, cross, normalise.

    history ids [B, L] ──summariser (Eq. 4)──▶ e [B, L, D_e]
    e ──extractor──▶ conditions c_j [B, K, D_e], slot_mask, importance
    fields per slot j [B, K, F, D_f]:
        0  the condition c_j                        (Linear D_e -> D_f)
        1  the whole sequence (Linear D_e -> D_f), same for every j: its masked mean, or,
           with a ``summary_pool``, a learned pooling such as the recency-aware attention
           of `SingleExtractor`; a learned "no history" vector when it has no real item
        2  the followed-topic bag, mean of topic embeddings (only when followed topics are on)
    crossing (DHEN, Appendix A) on the used slots' fields ──L2──▶ o_u^j [B, K, D]
    (unused slots, e.g. of short histories, are not crossed and stay zero)

Every slot shares the crossing parameters, so o_u^j differ only through c_j.

With a ``condition_out`` (the item tower's output map, when both towers share the
summariser) the crossing is a *residual*:
o_u^j = L2(L2(condition_out(c_j)) + w L2(crossing)).
A condition is a weighted mean of item summaries e_i, so condition_out(c_j) sits
where the items of its cluster sit in the item space; the crossing then moves it
by what the user's other fields say, both normalised and the crossing weighted by
``residual_weight`` (0.5) so that it can shift, not replace, the condition.
Without the residual the crossing's output is all there is, and since the
summary and topic fields are the same for every slot, it learns to lean on them
and a user's K embeddings collapse into one direction (mean pairwise cosine
0.95-0.97 on public logs).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiembed.nn.extractors import InterestExtractor, Interests
from multiembed.nn.features import ItemInputs, encode_items
from multiembed.nn.functional import masked_mean
from multiembed.nn.item_tower import ItemEncoder

CONDITION_FIELD, SUMMARY_FIELD, FOLLOWED_FIELD = 0, 1, 2
"""Positions of the fields handed to the crossing module."""


def n_user_fields(*, followed_topics: bool, summary: bool = True) -> int:
    """Number of crossing fields ``F`` of `MultiInterestUserTower`: the condition, the
    sequence summary (unless ``summary`` is False) and the followed topics (when on).

    >>> n_user_fields(followed_topics=False), n_user_fields(followed_topics=True, summary=False)
    (2, 2)
    """
    return 1 + int(summary) + int(followed_topics)


class FeatureCrossing(Protocol):
    """What the tower needs from its crossing module (e.g. `DHEN`): ``[N, F, D_f] -> [N, D]``."""

    n_fields: int
    field_dim: int
    out_dim: int

    def __call__(self, fields: Tensor) -> Tensor: ...


class UserEmbeddings(NamedTuple):
    """A user's K embeddings.

    Attributes:
        embeddings: ``[B, K, D]`` unit-norm user embeddings o_u^j; zero at unused slots.
        slot_mask: ``[B, K]`` bool, False for an unused slot (skip it when retrieving);
            at least one True per row.
        importance: ``[B, K]`` the extractor's importance of each condition (for
            retrieval budgets, Section 3.5); zero at unused slots.
    """

    embeddings: Tensor
    slot_mask: Tensor
    importance: Tensor


class MultiInterestUserTower(nn.Module):
    """User tower with ``K`` implicit conditions (Figure 3): see the module docstring.

    Args:
        summariser: an `nn.Module` following `ItemEncoder` for the history items (Eq. 4),
            owned by the tower.
        extractor: an `nn.Module` following `InterestExtractor`, with
            ``extractor.dim == summariser.out_dim``.
        crossing: an `nn.Module` following `FeatureCrossing` with
            ``n_fields == n_user_fields(followed_topics=n_followed_topics > 0)``; its
            ``out_dim`` is the embedding width ``D``.
        n_followed_topics: size of the followed-topic vocabulary; 0 leaves the field out.
        summary_pool: an optional `InterestExtractor` with ``k == 1`` and
            ``dim == summariser.out_dim`` that pools the sequence into the summary field;
            None takes the masked mean. Clusters carry no order, so a recency-aware pool
            is what tells the crossing which interests are current.
        condition_out: an optional map ``[*, D_e] -> [*, D]`` (e.g. the item tower's
            ``proj``, shared) that puts each condition in the item space; the crossing
            is then added to it as a residual (see the module docstring).
        residual_weight: with ``condition_out``, the length of the (unit) crossing added to
            the (unit) condition: below 1 the condition dominates each embedding.
        global_slot: add a last slot whose condition is the whole-sequence pooling (the
            single-embedding model's query) beside the extractor's ``K``, so ``k`` is
            ``K + 1``: the clusters add what one query misses instead of replacing it.
            Its importance is the mean of the used clusters'.
        summary: whether the whole-sequence summary is a field. It is the same for every
            slot, so it pulls a user's K embeddings together; without it each embedding
            depends on its own condition (and the followed topics) only.
        summary_global_only: with ``global_slot`` and ``summary``, give the summary to the
            whole-history slot only; the clusters' summary field is zero, so each cluster
            embedding depends on its own condition while the global slot carries the
            user's overall taste.

    Example:
        >>> from multiembed.nn.dhen import DHEN
        >>> from multiembed.nn.extractors import SelfAttentionExtractor
        >>> from multiembed.nn.summariser import ItemSummariser
        >>> _ = torch.manual_seed(0)
        >>> tower = MultiInterestUserTower(
        ...     summariser=ItemSummariser(n_items=10, id_dim=4, hidden_dim=8, out_dim=6),
        ...     extractor=SelfAttentionExtractor(dim=6, k=3),
        ...     crossing=DHEN(
        ...         n_fields=2, field_dim=4, n_heads=1, transformer_ff_dim=8, mlp_hidden_dim=8,
        ...         masknet_blocks=1, masknet_hidden_dim=4, masknet_projection_ratio=0.5,
        ...         out_dim=5,
        ...     ),
        ... )
        >>> history = torch.tensor([[1, 2, 3], [-1, -1, 4]])            # [B=2, L=3], -1 pads
        >>> user = tower(ItemInputs(history), history >= 0)
        >>> user.embeddings.shape, user.slot_mask.tolist()
        (torch.Size([2, 3, 5]), [[True, True, True], [True, False, False]])
    """

    def __init__(
        self,
        *,
        summariser: ItemEncoder,
        extractor: InterestExtractor,
        crossing: FeatureCrossing,
        n_followed_topics: int = 0,
        summary_pool: InterestExtractor | None = None,
        condition_out: nn.Module | None = None,
        summary: bool = True,
        residual_weight: float = 0.5,
        global_slot: bool = False,
        summary_global_only: bool = False,
    ) -> None:
        super().__init__()
        problems = [
            f"{name}: expected an nn.Module, got {type(part).__name__}"
            for name, part in (
                ("summariser", summariser),
                ("extractor", extractor),
                ("crossing", crossing),
            )
            if not isinstance(part, nn.Module)
        ]
        if isinstance(n_followed_topics, bool) or not (
            isinstance(n_followed_topics, int) and n_followed_topics >= 0
        ):
            problems.append(f"n_followed_topics = {n_followed_topics!r}: must be an int >= 0")
        if not problems:
            if extractor.dim != summariser.out_dim:
                problems.append(
                    f"extractor.dim = {extractor.dim}: must equal summariser.out_dim = "
                    f"{summariser.out_dim}"
                )
            fields = n_user_fields(followed_topics=n_followed_topics > 0, summary=summary)
            if summary_pool is not None and (
                not isinstance(summary_pool, nn.Module)
                or summary_pool.k != 1
                or summary_pool.dim != summariser.out_dim
            ):
                problems.append(
                    f"summary_pool: expected an nn.Module with k = 1 and dim = "
                    f"{summariser.out_dim}, got {type(summary_pool).__name__}"
                )
            if summary_global_only and not (global_slot and summary):
                problems.append(
                    "summary_global_only = True: needs global_slot = True and summary = True"
                )
            if crossing.n_fields != fields:
                problems.append(
                    f"crossing.n_fields = {crossing.n_fields}: must be {fields} (condition"
                    f"{', sequence summary' if summary else ''}"
                    f"{', followed topics' if n_followed_topics else ''})"
                )
        if problems:
            raise ValueError("invalid MultiInterestUserTower arguments: " + "; ".join(problems))
        self.summariser: ItemEncoder = summariser
        self.extractor: InterestExtractor = extractor
        self.crossing: FeatureCrossing = crossing
        self.summary_pool: InterestExtractor | None = summary_pool
        self.condition_out = condition_out
        self.use_summary = summary
        self.residual_weight = residual_weight
        self.global_slot = global_slot
        self.summary_global_only = summary_global_only
        self.k = extractor.k + int(global_slot)
        self.dim = crossing.out_dim
        self.n_followed_topics = n_followed_topics
        field_dim = crossing.field_dim
        self.condition_proj = nn.Linear(extractor.dim, field_dim)
        self.summary_proj = nn.Linear(summariser.out_dim, field_dim)
        # A user without history gets a learned summary, not zeros: all-zero fields
        # would cross to a zero embedding that scores every item alike.
        self.empty_summary = nn.Parameter(torch.empty(field_dim))
        # Likewise its condition: the extractors give a zero centroid, and a zero vector
        # has no direction to normalise (the gradient of L2 there is ~1e12, which clips
        # away the whole batch's update whenever a batch holds a first engagement).
        self.empty_condition = nn.Parameter(torch.empty(extractor.dim))
        # row n_followed_topics stands for "follows nothing"
        self.followed_table = (
            nn.Embedding(n_followed_topics + 1, field_dim) if n_followed_topics > 0 else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier projections, zero biases, topic embeddings ~ N(0, 0.02^2), and the
        "no history" summary ~ N(0, 1 / D_f) (unit norm scale).

        The injected parts keep their own initialisation.
        """
        for linear in (self.condition_proj, self.summary_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        nn.init.trunc_normal_(self.empty_summary, std=self.empty_summary.shape[0] ** -0.5)
        nn.init.trunc_normal_(self.empty_condition, std=self.empty_condition.shape[0] ** -0.5)
        if self.followed_table is not None:
            nn.init.trunc_normal_(self.followed_table.weight, std=0.02)

    def forward(
        self, history: ItemInputs, history_valid: Tensor, *, followed: Tensor | None = None
    ) -> UserEmbeddings:
        """Embed users.

        Args:
            history: features of the history items, ``item_ids [B, L]`` with ``-1`` at
                padding (see `ItemFeatures.lookup`); oldest first.
            history_valid: ``[B, L]`` bool, True for a valid item with a positive action
                (Eq. 6); ignored at padding.
            followed: ``[B, T]`` int64 followed topics padded with ``-1``; required iff
                ``n_followed_topics > 0``.

        Returns:
            `UserEmbeddings` with embeddings ``[B, K, D]``.
        """
        ids = history.item_ids
        if ids.dim() != 2:
            raise ValueError(
                f"MultiInterestUserTower: expected history.item_ids of shape [B, L], "
                f"got {list(ids.shape)}"
            )
        if history_valid.dtype != torch.bool or history_valid.shape != ids.shape:
            raise ValueError(
                f"MultiInterestUserTower: expected history_valid of dtype torch.bool and shape "
                f"{list(ids.shape)}, got {history_valid.dtype} of shape "
                f"{list(history_valid.shape)}"
            )
        mask = ids >= 0  # [B, L]
        e = encode_items(self.summariser, history)  # [B, L, D_e]
        interests = self.extractor(e, mask, history_valid & mask, item_ids=ids.long())
        has_history = mask.any(dim=1)  # [B]
        no_history = (interests.slot_mask & ~has_history[:, None]).unsqueeze(-1)  # [B, K, 1]
        interests = interests._replace(
            conditions=torch.where(no_history, self.empty_condition, interests.conditions)
        )
        pooled = (
            masked_mean(e, mask)
            if self.summary_pool is None
            else self.summary_pool(e, mask, history_valid & mask).conditions[:, 0]
        )  # [B, D_e]
        pooled = torch.where(has_history[:, None], pooled, self.empty_condition)
        if self.global_slot:
            interests = _with_global(interests, pooled)
        b, k = interests.slot_mask.shape
        fields = [self.condition_proj(interests.conditions)]  # [B, K, D_f]
        if self.use_summary:
            summary = torch.where(
                has_history[:, None], self.summary_proj(pooled), self.empty_summary
            )  # [B, D_f]
            per_slot = summary.unsqueeze(1).expand(b, k, -1)  # [B, K, D_f]
            if self.summary_global_only:  # the clusters' field is zero, the last slot's not
                last = torch.arange(k, device=summary.device) == k - 1  # [K]
                per_slot = per_slot * last.to(summary.dtype)[None, :, None]
            fields.append(per_slot)
        if self.followed_table is not None:
            bag = followed_bag(  # [B, D_f]
                self.followed_table, followed, b, where="MultiInterestUserTower"
            )
            fields.append(bag.unsqueeze(1).expand(b, k, -1))
        elif followed is not None:
            raise ValueError(
                "MultiInterestUserTower: expected followed = None (n_followed_topics = 0), "
                f"got a tensor of shape {list(followed.shape)}"
            )
        stacked = torch.stack(fields, dim=2).reshape(b * k, len(fields), -1)  # [B*K, F, D_f]
        # Cross only the used slots: the crossing treats rows independently, so this is
        # exact, and it skips the dominant cost for short histories (unused slots are zero).
        used = interests.slot_mask.reshape(b * k)  # [B*K]
        rows = used.nonzero().squeeze(1)  # [N] used slots
        out = self.crossing(stacked[rows])  # [N, D]
        if self.condition_out is not None:
            conditions = interests.conditions.reshape(b * k, -1)[rows]  # [N, D_e]
            # both parts unit length, the crossing weighted by residual_weight: however
            # alike the crossings of a user's slots are, their embeddings keep much of the
            # conditions' spread (two orthogonal conditions, one crossing along their
            # bisector: cosine 0.49 at w = 0.5, 0.75 at w = 1)
            out = F.normalize(self.condition_out(conditions), dim=-1) + (
                self.residual_weight * F.normalize(out, dim=-1)
            )
        crossed = stacked.new_zeros(b * k, self.dim).index_put(
            (rows,), F.normalize(out, dim=-1)
        )  # [B*K, D]
        return UserEmbeddings(crossed.view(b, k, -1), interests.slot_mask, interests.importance)


def followed_bag(table: nn.Embedding, followed: Tensor | None, b: int, *, where: str) -> Tensor:
    """Mean embedding of the followed topics, the last ("nothing") row when none: ``[B, D_f]``.

    ``where`` names the calling tower in error messages.
    """
    n = table.num_embeddings - 1
    if followed is None or followed.dim() != 2 or followed.shape[0] != b:
        got = "None" if followed is None else f"shape {list(followed.shape)}"
        raise ValueError(f"{where}: expected followed of shape [{b}, T], got {got}")
    if followed.dtype != torch.int64:
        raise ValueError(f"{where}: expected followed of dtype torch.int64, got {followed.dtype}")
    if followed.numel() and (int(followed.min()) < -1 or int(followed.max()) >= n):
        raise ValueError(
            f"{where}: expected followed topics in [-1, {n - 1}], "
            f"got [{int(followed.min())}, {int(followed.max())}]"
        )
    present = followed >= 0  # [B, T]
    rows = table(followed.clamp_min(0)) * present.unsqueeze(-1)  # [B, T, D_f]
    count = present.sum(dim=1, keepdim=True)  # [B, 1]
    mean = rows.sum(dim=1) / count.clamp_min(1)  # [B, D_f]
    return torch.where(count > 0, mean, table.weight[n])


def _with_global(interests: Interests, pooled: Tensor) -> Interests:
    """`interests` with one more slot: condition `pooled` ``[B, D_e]``, always used,
    importance the mean of the used slots' (1 when none has any)."""
    used = interests.slot_mask.sum(dim=1, keepdim=True).clamp_min(1)  # [B, 1]
    mean = interests.importance.sum(dim=1, keepdim=True) / used  # [B, 1]
    mean = torch.where(mean > 0, mean, torch.ones_like(mean))
    return Interests(
        torch.cat([interests.conditions, pooled.unsqueeze(1)], dim=1),  # [B, K + 1, D_e]
        torch.cat([interests.slot_mask, torch.ones_like(interests.slot_mask[:, :1])], dim=1),
        torch.cat([interests.importance, mean], dim=1),
    )
