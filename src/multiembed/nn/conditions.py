"""Condition sources: where the conditions c_j that `UserTower` crosses with a user come from.

The one part that tells implicit from explicit interests in the tower, behind the
`ConditionSource` protocol:

- `ExtractedConditions`: ``K`` conditions clustered or attended from the history by an
  `InterestExtractor` (implicit interests, Section 3.2), each entering the crossing
  through a linear map ``D_e -> D_f``; optionally one more slot for the whole history.
- `TopicConditions`: ``C`` conditions given as topic ids (explicit interests, Conditional
  Retrieval, Section 3.3.1), each entering through a learned topic table, so the
  crossing learns user x topic interactions in the embedding layer.

A source builds its condition field (`make_field`) and initialises it
(`reset_field`), but the tower owns the field, so that every tower lays out its
parameters alike.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import Tensor, nn

from multiembed.nn.extractors import InterestExtractor
from multiembed.nn.functional._checks import (
    check_ids,
    module_problems,
    raise_problems,
    size_problems,
)


class Slots(NamedTuple):
    """The conditions of a batch of ``B`` users, one per slot.

    Attributes:
        conditions: what the condition field reads: ``[B, K, D_e]`` condition vectors
            c_j (`ExtractedConditions`), or ``[B, C]`` int64 topic ids, ``0`` at padded
            slots (`TopicConditions`).
        slot_mask: ``[B, K]`` bool, False for an unused (or padded) slot, which is not
            crossed and whose embedding stays zero.
        importance: ``[B, K]`` float, each condition's share of the user (retrieval
            budgets, Section 3.5); zero at unused slots.
    """

    conditions: Tensor
    slot_mask: Tensor
    importance: Tensor


class ConditionSource(Protocol):
    """What `UserTower` needs from its condition source (an `nn.Module`).

    Attributes:
        k: slots per user, or None when the caller gives them (topic ids ``[B, C]``).
        dim: width ``D_e`` of conditions drawn from the history, or None for topic ids.
    """

    k: int | None
    dim: int | None

    def make_field(self, field_dim: int) -> nn.Module:
        """A new module mapping `Slots.conditions` to the condition field ``[B, K, D_f]``."""
        ...

    def reset_field(self, field: nn.Module) -> None:
        """Initialise a field made by `make_field`."""
        ...

    def __call__(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor,
        topics: Tensor | None,
        padding_zeroed: bool = False,
    ) -> Slots: ...

    def with_pooled(self, slots: Slots, pooled: Tensor) -> Slots:
        """``slots`` once the whole history is pooled into ``pooled [B, D_e]``."""
        ...


class ExtractedConditions(nn.Module):
    """Implicit conditions: ``K`` interests extracted from the history (Figure 3).

    Args:
        extractor: an `nn.Module` following `InterestExtractor`; its ``dim`` must be the
            tower summariser's ``out_dim``.
        global_slot: add a last slot whose condition is the whole-history pooling (the
            single-embedding model's query) beside the extractor's ``K``, so ``k`` is
            ``K + 1``: the clusters add what one query misses instead of replacing it.
            Its importance is the mean of the used clusters'.

    Example:
        >>> from multiembed.nn.extractors import SelfAttentionExtractor
        >>> extractor = SelfAttentionExtractor(dim=4, k=2)
        >>> source = ExtractedConditions(extractor=extractor, global_slot=True)
        >>> e, mask = torch.randn(3, 5, 4), torch.ones(3, 5, dtype=torch.bool)  # [B, L, D_e]
        >>> ids = torch.zeros(3, 5, dtype=torch.long)
        >>> slots = source(e, mask, mask, item_ids=ids, topics=None)
        >>> source.with_pooled(slots, e.mean(dim=1)).conditions.shape           # [B, K + 1, D_e]
        torch.Size([3, 3, 4])
    """

    def __init__(self, *, extractor: InterestExtractor, global_slot: bool = False) -> None:
        super().__init__()
        raise_problems("ExtractedConditions", module_problems(extractor=extractor))
        self.extractor: InterestExtractor = extractor
        self.global_slot = global_slot
        self.k: int | None = extractor.k + int(global_slot)
        self.dim: int | None = extractor.dim

    def make_field(self, field_dim: int) -> nn.Module:
        """``Linear(D_e, D_f)``."""
        return nn.Linear(self.extractor.dim, field_dim)

    def reset_field(self, field: nn.Module) -> None:
        """Xavier weight, zero bias."""
        assert isinstance(field, nn.Linear)  # made by make_field
        nn.init.xavier_uniform_(field.weight)
        nn.init.zeros_(field.bias)

    def forward(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor,
        topics: Tensor | None,
        padding_zeroed: bool = False,
    ) -> Slots:
        """The extractor's `Interests` of ``e [B, L, D_e]`` as `Slots` ``[B, K, D_e]``
        (``padding_zeroed``: ``e`` is already zero at padding, as the extractor's)."""
        if topics is not None:
            raise ValueError(
                "UserTower: expected conditions = None (the conditions come from the "
                f"history), got a tensor of shape {list(topics.shape)}"
            )
        return Slots(
            *self.extractor(e, mask, valid, item_ids=item_ids, padding_zeroed=padding_zeroed)
        )

    def with_pooled(self, slots: Slots, pooled: Tensor) -> Slots:
        """With `global_slot`, one more slot: condition ``pooled [B, D_e]``, always used,
        importance the mean of the used slots' (1 when none has any)."""
        if not self.global_slot:
            return slots
        used = slots.slot_mask.sum(dim=1, keepdim=True).clamp_min(1)  # [B, 1]
        mean = slots.importance.sum(dim=1, keepdim=True) / used  # [B, 1]
        mean = torch.where(mean > 0, mean, torch.ones_like(mean))
        return Slots(
            torch.cat([slots.conditions, pooled.unsqueeze(1)], dim=1),  # [B, K + 1, D_e]
            torch.cat([slots.slot_mask, torch.ones_like(slots.slot_mask[:, :1])], dim=1),
            torch.cat([slots.importance, mean], dim=1),
        )

    def extra_repr(self) -> str:
        return f"k={self.k}, global_slot={self.global_slot}"


class TopicConditions(nn.Module):
    """Explicit conditions: topic ids given with each request (Conditional Retrieval).

    Args:
        n_topics: size of the topic vocabulary; conditions are ``0 .. n_topics - 1``.

    The field is a learned ``n_topics x D_f`` table, started as loud as the summary
    field (about unit norm), so the crossing reads the topic from the first step.

    Example:
        >>> source = TopicConditions(n_topics=5)
        >>> e, mask = torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)
        >>> slots = source(e, mask, mask, item_ids=None, topics=torch.tensor([[4, -1], [0, 2]]))
        >>> slots.conditions.tolist(), slots.slot_mask.tolist()
        ([[4, 0], [0, 2]], [[True, False], [True, True]])
    """

    def __init__(self, *, n_topics: int) -> None:
        super().__init__()
        raise_problems("TopicConditions", size_problems(n_topics=n_topics))
        self.n_topics = n_topics
        self.k: int | None = None
        self.dim: int | None = None

    def make_field(self, field_dim: int) -> nn.Module:
        """``Embedding(n_topics, D_f)``."""
        return nn.Embedding(self.n_topics, field_dim)

    def reset_field(self, field: nn.Module) -> None:
        """N(0, 1 / D_f) truncated at two standard deviations (unit norm scale)."""
        assert isinstance(field, nn.Embedding)  # made by make_field
        scale = field.weight.shape[1] ** -0.5
        nn.init.trunc_normal_(field.weight, std=scale, a=-2 * scale, b=2 * scale)

    def forward(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor | None,
        topics: Tensor | None,
        padding_zeroed: bool = False,
    ) -> Slots:
        """``topics [B]`` or ``[B, C]`` int topic ids, ``-1`` at a padded slot -> `Slots`
        ``[B, C]`` (``C = 1`` for ``[B]``); the history is not read."""
        b = e.shape[0]
        if topics is None or topics.dim() not in (1, 2) or topics.shape[0] != b:
            got = "None" if topics is None else str(list(topics.shape))
            raise ValueError(
                f"UserTower: expected conditions of shape [{b}] or [{b}, C], got {got}"
            )
        if topics.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"UserTower: expected conditions of dtype int32 or int64, got {topics.dtype}"
            )
        check_ids("UserTower", "condition topics", topics, self.n_topics)
        cond = topics.long().unsqueeze(1) if topics.dim() == 1 else topics.long()  # [B, C]
        present = cond >= 0  # [B, C]
        return Slots(cond.clamp_min(0), present, present.to(e.dtype))

    def with_pooled(self, slots: Slots, pooled: Tensor) -> Slots:
        """``slots`` unchanged: topics take nothing from the history."""
        return slots

    def extra_repr(self) -> str:
        return f"n_topics={self.n_topics}"
