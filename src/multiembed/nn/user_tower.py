"""The user tower phi(u, c_j): summarise the history, take conditions, cross, normalise.

One tower serves implicit and explicit interests; what differs is the injected
`ConditionSource` (`multiembed.nn.conditions`): an extractor giving ``K`` conditions
from the history, or topic ids giving ``C`` conditions.

    history ids [B, L] ──summariser (Eq. 4)──▶ e [B, L, D_e]
    conditions: extractor(e) [B, K, D_e]  or  topic ids [B, C]  (with a slot mask)
    fields per slot j [B, K, F, D_f]:
        0  the condition c_j: Linear D_e -> D_f of an extracted condition, or the
           topic's row of a learned table
        1  the whole history (Linear D_e -> D_f), same for every j: its mean (over the
           real items, or over the valid ones only), or a learned pooling such as the
           recency-aware attention of `SingleExtractor`; a learned "no history" vector
           when it has no item to pool
        2  the followed-topic bag, mean of topic embeddings (only when followed topics are on)
    crossing (DHEN, Appendix A) on the used slots' fields ──L2──▶ o_u^j [B, K, D]
    (unused slots, e.g. of short histories or padded topics, are not crossed and stay zero)

Every slot shares the crossing parameters, so o_u^j differ only through c_j; the
history is summarised once per user, however many conditions it is crossed with.

With a `Residual` (the item tower's output map, when both towers share the
summariser) the crossing is a *residual* on an extracted condition:
o_u^j = L2(L2(condition_out(c_j)) + w L2(crossing)).
A condition is a weighted mean of item summaries e_i, so condition_out(c_j) sits
where the items of its cluster sit in the item space; the crossing then moves it
by what the user's other fields say, both normalised and the crossing weighted by
``weight`` (0.5) so that it can shift, not replace, the condition.
Without the residual the crossing's output is all there is, and since the
summary and topic fields are the same for every slot, it learns to lean on them
and a user's K embeddings collapse into one direction (mean pairwise cosine
0.95-0.97 on public logs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiembed.nn.conditions import ConditionSource
from multiembed.nn.extractors import InterestExtractor
from multiembed.nn.features import ItemInputs, ItemLookup, encode_items
from multiembed.nn.functional import masked_mean
from multiembed.nn.functional._checks import check_ids, module_problems, raise_problems
from multiembed.nn.item_tower import ItemEncoder


def n_user_fields(*, followed_topics: bool, summary: bool = True) -> int:
    """Number of crossing fields ``F`` of `UserTower`: the condition, the sequence
    summary (unless ``summary`` is False) and the followed topics (when on).

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
            at least one True per row for extracted conditions.
        importance: ``[B, K]`` the importance of each condition (for retrieval budgets,
            Section 3.5); zero at unused slots.
    """

    embeddings: Tensor
    slot_mask: Tensor
    importance: Tensor


SummaryInit = Callable[[nn.Linear, nn.Parameter], None]
"""Initialises the summary field's projection and its "no history" vector."""


def init_summary(proj: nn.Linear, empty: nn.Parameter) -> None:
    """Xavier projection with zero bias, then the "no history" vector ~ N(0, 1 / D_f)."""
    nn.init.xavier_uniform_(proj.weight)
    nn.init.zeros_(proj.bias)
    nn.init.trunc_normal_(empty, std=empty.shape[0] ** -0.5)


def init_summary_bounded(proj: nn.Linear, empty: nn.Parameter) -> None:
    """The "no history" vector ~ N(0, 1 / D_f) truncated at two standard deviations (as
    `TopicConditions` draws its table), then a Xavier projection with zero bias."""
    scale = empty.shape[0] ** -0.5
    nn.init.trunc_normal_(empty, std=scale, a=-2 * scale, b=2 * scale)
    nn.init.xavier_uniform_(proj.weight)
    nn.init.zeros_(proj.bias)


class Summary(NamedTuple):
    """How `UserTower` pools the whole history, and the summary field it makes of it.

    Attributes:
        pool: an `InterestExtractor` with ``k == 1`` (e.g. `SingleExtractor`'s
            recency-aware attention: clusters carry no order, so such a pool is what
            tells the crossing which interests are current), or None for the mean.
        valid_only: the mean, and whether a user has history at all, read only valid
            items (``history_valid``: present features and a positive action, the mask
            of Eq. 6); otherwise every real item. Conditional Retrieval's choice: a
            hidden item or one with missing features is no evidence of interest, and a
            mean pool has no routing to discount it.
        field: whether the summary is a crossing field. It is the same for every slot,
            so it pulls a user's K embeddings together; without it each embedding
            depends on its own condition (and the followed topics) only.
        global_only: with an `ExtractedConditions` ``global_slot``, give the summary to the
            whole-history slot only; the clusters' summary field is zero.
        init: initialises the field's projection and "no history" vector:
            `init_summary` (the implicit models) or `init_summary_bounded` (Conditional
            Retrieval, drawn like its topic table).
    """

    pool: InterestExtractor | None = None
    valid_only: bool = False
    field: bool = True
    global_only: bool = False
    init: SummaryInit = init_summary


class Residual(NamedTuple):
    """An extracted condition placed in the item space, the crossing added to it.

    Attributes:
        out: a map ``[*, D_e] -> [*, D]`` (e.g. the item tower's ``proj``, shared).
        weight: the length of the (unit) crossing added to the (unit) condition: below 1
            the condition dominates each embedding.
    """

    out: nn.Module
    weight: float = 0.5


class UserTower(nn.Module):
    """User tower with injected conditions (Figures 3 and 4): see the module docstring.

    Args:
        summariser: an `nn.Module` following `ItemEncoder` for the history items (Eq. 4),
            owned by the tower (it may be the item tower's own, to share item summaries).
        conditions: an `nn.Module` following `ConditionSource` (`ExtractedConditions` or
            `TopicConditions`); the tower makes and owns its condition field.
        crossing: an `nn.Module` following `FeatureCrossing` with
            ``n_fields == n_user_fields(followed_topics=n_followed_topics > 0,
            summary=summary.field)``; its ``out_dim`` is the embedding width ``D``.
        summary: the whole-history pooling and field (`Summary`).
        n_followed_topics: size of the followed-topic vocabulary; 0 leaves the field out.
        residual: an optional `Residual` for extracted conditions.

    Example:
        >>> from multiembed.nn.conditions import ExtractedConditions, TopicConditions
        >>> from multiembed.nn.dhen import DHEN, DHENSizes
        >>> from multiembed.nn.extractors import SelfAttentionExtractor
        >>> from multiembed.nn.summariser import ItemSummariser
        >>> sizes = DHENSizes(
        ...     field_dim=4, n_heads=1, transformer_ff_dim=8, mlp_hidden_dim=8,
        ...     masknet_blocks=1, masknet_hidden_dim=4, masknet_projection_ratio=0.5,
        ... )
        >>> def tower(conditions):
        ...     return UserTower(
        ...         summariser=ItemSummariser(n_items=10, id_dim=4, hidden_dim=8, out_dim=6),
        ...         conditions=conditions,
        ...         crossing=DHEN(n_fields=2, out_dim=5, sizes=sizes),
        ...     ).eval()
        >>> _ = torch.manual_seed(0)
        >>> implicit = tower(ExtractedConditions(extractor=SelfAttentionExtractor(dim=6, k=3)))
        >>> history = torch.tensor([[1, 2, 3], [-1, -1, 4]])            # [B=2, L=3], -1 pads
        >>> user = implicit(ItemInputs(history), history >= 0)
        >>> user.embeddings.shape, user.slot_mask.tolist()
        (torch.Size([2, 3, 5]), [[True, True, True], [True, False, False]])
        >>> explicit = tower(TopicConditions(n_topics=7))
        >>> per_topic = explicit(ItemInputs(history), history >= 0, torch.tensor([[3, 6], [0, -1]]))
        >>> per_topic.embeddings.norm(dim=-1).round(decimals=4).tolist()   # [B, C]
        [[1.0, 1.0], [1.0, 0.0]]
    """

    def __init__(
        self,
        *,
        summariser: ItemEncoder,
        conditions: ConditionSource,
        crossing: FeatureCrossing,
        summary: Summary = Summary(),
        n_followed_topics: int = 0,
        residual: Residual | None = None,
    ) -> None:
        super().__init__()
        _check(summariser, conditions, crossing, summary, n_followed_topics, residual)
        self.summariser: ItemEncoder = summariser
        self.conditions: ConditionSource = conditions
        self.crossing: FeatureCrossing = crossing
        self.summary_pool: InterestExtractor | None = summary.pool
        self.condition_out = None if residual is None else residual.out
        self.summary = summary
        self.residual_weight = 0.5 if residual is None else residual.weight
        self.k = conditions.k
        self.dim = crossing.out_dim
        self.n_followed_topics = n_followed_topics
        field_dim = crossing.field_dim
        # A user without history gets a learned summary, not zeros: all-zero fields
        # would cross to a zero embedding that scores every item alike.
        self.empty_summary = nn.Parameter(torch.empty(field_dim))
        # Likewise an extracted condition: the extractors give a zero centroid, and a zero
        # vector has no direction to normalise (the gradient of L2 there is ~1e12, which
        # clips away the whole batch's update whenever a batch holds a first engagement).
        self.empty_condition = (
            None if conditions.dim is None else nn.Parameter(torch.empty(conditions.dim))
        )
        self.condition_field = conditions.make_field(field_dim)
        self.summary_proj = nn.Linear(summariser.out_dim, field_dim)
        # row n_followed_topics stands for "follows nothing"
        self.followed_table = (
            nn.Embedding(n_followed_topics + 1, field_dim) if n_followed_topics > 0 else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The condition field by its source, the summary field by ``summary.init``, the
        "no history" condition ~ N(0, 1 / D_e) and topic embeddings ~ N(0, 0.02^2).

        The injected parts keep their own initialisation.
        """
        self.conditions.reset_field(self.condition_field)
        self.summary.init(self.summary_proj, self.empty_summary)
        if self.empty_condition is not None:
            nn.init.trunc_normal_(self.empty_condition, std=self.empty_condition.shape[0] ** -0.5)
        if self.followed_table is not None:
            nn.init.trunc_normal_(self.followed_table.weight, std=0.02)

    def forward(
        self,
        history: ItemInputs | ItemLookup,
        history_valid: Tensor,
        conditions: Tensor | None = None,
        *,
        followed: Tensor | None = None,
    ) -> UserEmbeddings:
        """Embed users.

        Args:
            history: the history items, ``item_ids [B, L]`` with ``-1`` at padding,
                oldest first: their features (`ItemFeatures.lookup`) or the ids and
                the table (`ItemLookup`, which gathers each distinct item's once).
            history_valid: ``[B, L]`` bool, True for a valid item with a positive action
                (Eq. 6); ignored at padding.
            conditions: for `TopicConditions`, ``[B]`` or ``[B, C]`` int topic ids, ``-1``
                at a padded slot (e.g. a user following fewer than ``C`` topics); None for
                conditions drawn from the history.
            followed: ``[B, T]`` int64 followed topics padded with ``-1``; required iff
                ``n_followed_topics > 0``.

        Returns:
            `UserEmbeddings` with embeddings ``[B, K, D]`` (``K = C``, 1 for ``[B]``).
        """
        ids = history.item_ids
        if ids.dim() != 2:
            raise ValueError(
                f"UserTower: expected history.item_ids of shape [B, L], got {list(ids.shape)}"
            )
        if history_valid.dtype != torch.bool or history_valid.shape != ids.shape:
            raise ValueError(
                f"UserTower: expected history_valid of dtype torch.bool and shape "
                f"{list(ids.shape)}, got {history_valid.dtype} of shape "
                f"{list(history_valid.shape)}"
            )
        mask = ids >= 0  # [B, L]
        valid = history_valid & mask  # [B, L]
        # zero at padding once, here, for every reader of the sequence below
        e = encode_items(self.summariser, history, zero_padding=True)  # [B, L, D_e]
        slots = self.conditions(
            e, mask, valid, item_ids=ids.long(), topics=conditions, padding_zeroed=True
        )
        reads = valid if self.summary.valid_only else mask  # [B, L]
        has_history = reads.any(dim=1)  # [B]
        if self.empty_condition is not None:
            no_history = (slots.slot_mask & ~has_history[:, None]).unsqueeze(-1)  # [B, K, 1]
            slots = slots._replace(
                conditions=torch.where(no_history, self.empty_condition, slots.conditions)
            )
        pooled = (
            masked_mean(e, reads)
            if self.summary_pool is None
            else self.summary_pool(e, mask, valid, padding_zeroed=True).conditions[:, 0]
        )  # [B, D_e]
        if self.empty_condition is not None:
            pooled = torch.where(has_history[:, None], pooled, self.empty_condition)
        slots = self.conditions.with_pooled(slots, pooled)
        b, k = slots.slot_mask.shape
        fields = [self.condition_field(slots.conditions)]  # [B, K, D_f]
        if self.summary.field:
            summary = torch.where(
                has_history[:, None], self.summary_proj(pooled), self.empty_summary
            )  # [B, D_f]
            per_slot = summary.unsqueeze(1).expand(b, k, -1)  # [B, K, D_f]
            if self.summary.global_only:  # the clusters' field is zero, the last slot's not
                last = torch.arange(k, device=summary.device) == k - 1  # [K]
                per_slot = per_slot * last.to(summary.dtype)[None, :, None]
            fields.append(per_slot)
        if self.followed_table is not None:
            bag = _followed_bag(self.followed_table, followed, b)  # [B, D_f]
            fields.append(bag.unsqueeze(1).expand(b, k, -1))
        elif followed is not None:
            raise ValueError(
                "UserTower: expected followed = None (n_followed_topics = 0), "
                f"got a tensor of shape {list(followed.shape)}"
            )
        stacked = torch.stack(fields, dim=2).reshape(b * k, len(fields), -1)  # [B*K, F, D_f]
        # Cross only the used slots: the crossing treats rows independently, so this is
        # exact, and it skips the dominant cost for short histories (unused slots are zero).
        rows = slots.slot_mask.reshape(b * k).nonzero().squeeze(1)  # [N] used slots
        crossed = stacked.new_zeros(b * k, self.dim)  # [B*K, D]
        if rows.numel():
            out = self.crossing(stacked[rows])  # [N, D]
            if self.condition_out is not None:
                conditions_n = slots.conditions.reshape(b * k, -1)[rows]  # [N, D_e]
                # both parts unit length, the crossing weighted by residual_weight: however
                # alike the crossings of a user's slots are, their embeddings keep much of
                # the conditions' spread (two orthogonal conditions, one crossing along
                # their bisector: cosine 0.49 at w = 0.5, 0.75 at w = 1)
                out = F.normalize(self.condition_out(conditions_n), dim=-1) + (
                    self.residual_weight * F.normalize(out, dim=-1)
                )
            # under autocast the crossing may give bf16; the embeddings stay in the fields' dtype
            crossed = crossed.index_put((rows,), F.normalize(out, dim=-1).to(crossed.dtype))
        return UserEmbeddings(crossed.view(b, k, -1), slots.slot_mask, slots.importance)

    def extra_repr(self) -> str:
        return f"k={self.k}, dim={self.dim}, n_followed_topics={self.n_followed_topics}"


def _check(
    summariser: ItemEncoder,
    conditions: ConditionSource,
    crossing: FeatureCrossing,
    summary: Summary,
    n_followed_topics: int,
    residual: Residual | None,
) -> None:
    """Raise ValueError listing every way the parts of a `UserTower` do not fit."""
    problems = module_problems(summariser=summariser, conditions=conditions, crossing=crossing)
    if isinstance(n_followed_topics, bool) or not (
        isinstance(n_followed_topics, int) and n_followed_topics >= 0
    ):
        problems.append(f"n_followed_topics = {n_followed_topics!r}: must be an int >= 0")
    if not problems:
        if conditions.dim is not None and conditions.dim != summariser.out_dim:
            problems.append(
                f"extractor.dim = {conditions.dim}: must equal summariser.out_dim = "
                f"{summariser.out_dim}"
            )
        pool = summary.pool
        if pool is not None and (
            not isinstance(pool, nn.Module) or pool.k != 1 or pool.dim != summariser.out_dim
        ):
            problems.append(
                f"summary_pool: expected an nn.Module with k = 1 and dim = "
                f"{summariser.out_dim}, got {type(pool).__name__}"
            )
        global_slot = getattr(conditions, "global_slot", False)
        if summary.global_only and not (global_slot and summary.field):
            problems.append(
                "summary_global_only = True: needs global_slot = True and summary = True"
            )
        if residual is not None and conditions.dim is None:
            problems.append("residual: needs conditions drawn from the history (a dim)")
        fields = n_user_fields(followed_topics=n_followed_topics > 0, summary=summary.field)
        if crossing.n_fields != fields:
            problems.append(
                f"crossing.n_fields = {crossing.n_fields}: must be {fields} (condition"
                f"{', sequence summary' if summary.field else ''}"
                f"{', followed topics' if n_followed_topics else ''})"
            )
    raise_problems("UserTower", problems)


def _followed_bag(table: nn.Embedding, followed: Tensor | None, b: int) -> Tensor:
    """Mean embedding of the followed topics, the last ("nothing") row when none: ``[B, D_f]``."""
    where = "UserTower"
    n = table.num_embeddings - 1
    if followed is None or followed.dim() != 2 or followed.shape[0] != b:
        got = "None" if followed is None else f"shape {list(followed.shape)}"
        raise ValueError(f"{where}: expected followed of shape [{b}, T], got {got}")
    if followed.dtype != torch.int64:
        raise ValueError(f"{where}: expected followed of dtype torch.int64, got {followed.dtype}")
    check_ids(where, "followed topics", followed, n)
    present = followed >= 0  # [B, T]
    rows = table(followed.clamp_min(0)) * present.unsqueeze(-1)  # [B, T, D_f]
    count = present.sum(dim=1, keepdim=True)  # [B, 1]
    mean = rows.sum(dim=1) / count.clamp_min(1)  # [B, D_f]
    return torch.where(count > 0, mean, table.weight[n])
