"""The Conditional Retrieval model: conditional user tower, item tower, association, Eq. 9 loss.

    c      = association(source_topic, target item's topics)   [B]  and keep [B]
    drop the examples without a condition (counted in the stats)  -> b kept rows
    phi    = user_tower(history, c)          [b, D]   (unit norm, Section 3.3.1)
    psi    = item_tower(target)              [b, D]   (unit norm)
    loss   = in-batch sampled softmax of phi against every psi of the kept rows,
             dot products / temperature, minus log q of the column's item,
             accidental hits masked                                       (Eq. 9)

The loss is the implicit models' (`sampled_softmax_loss`), with the single
conditioned embedding in place of the associated o_u^{j*}.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from multiembed.nn.conditional._association import ConditionAssociation, Conditions
from multiembed.nn.conditions import TopicConditions
from multiembed.nn.features import ItemFeatures, ItemLookup
from multiembed.nn.functional import sampled_softmax_loss
from multiembed.nn.functional._checks import check_ids, check_shapes
from multiembed.nn.item_tower import ItemEncoder
from multiembed.nn.retrieval import TwoTowerModel
from multiembed.nn.user_tower import UserTower


class ConditionalBatch(NamedTuple):
    """One training batch of ``B`` examples (the fields of `multiembed.data.examples.Example`).

    Attributes:
        history: ``[B, L]`` int64 item ids of the history, oldest first, ``-1`` = padding.
        history_valid: ``[B, L]`` bool, True for a valid item with a positive action.
        target: ``[B]`` int64 target item ids.
        source_topic: ``[B]`` int64 topic logged with the target engagement, ``-1`` = none.
        followed: ``[B, T]`` int64 topics the user followed at the target's time, padded
            with ``-1``, or None. Read by towers built with followed topics; otherwise
            used only for `ConditionalStats.n_condition_followed`.
    """

    history: Tensor
    history_valid: Tensor
    target: Tensor
    source_topic: Tensor
    followed: Tensor | None = None


class ConditionalStats(NamedTuple):
    """What one loss call trained on.

    Attributes:
        n_examples: examples in the batch (``B``).
        n_without_condition: examples the association gave no condition (nothing
            logged, or an item without topics); not trained on.
        n_condition_followed: of the kept examples, how many are conditioned on a topic
            the user follows (the serving-time conditions, Section 3.3.2); None when the
            batch carries no followed topics.
    """

    n_examples: int
    n_without_condition: int
    n_condition_followed: int | None

    @property
    def n_kept(self) -> int:
        """Examples trained on."""
        return self.n_examples - self.n_without_condition


class ConditionalRetrievalModel(TwoTowerModel[ConditionAssociation]):
    """Conditional Retrieval (Figure 4): a topic-conditioned user tower trained with Eq. 9.

    Args:
        user_tower: a `UserTower` with `TopicConditions`.
        item_tower: an `nn.Module` mapping `ItemInputs` keyword features of ids ``[*S]``
            to unit-norm ``[*S, D]`` (e.g. `ItemTower`), with the user tower's ``D``.
        association: an `nn.Module` following `ConditionAssociation` (`SourceInterest`
            or `ItemInterest`).
        features: the item feature table, kept as non-persistent buffers (data, not
            weights); its topics, if any, must lie in the user tower's vocabulary.
        temperature: fixed divisor of the dot products, > 0.

    Example:
        >>> from multiembed.config import ModelConfig
        >>> from multiembed.nn.builders import build_conditional_model
        >>> features = ItemFeatures(n_items=20, topics=torch.arange(20).remainder(4)[:, None])
        >>> model = build_conditional_model(
        ...     ModelConfig(kind="explicit", dim=8, hidden_dim=16), features=features, n_topics=4
        ... )
        >>> batch = ConditionalBatch(
        ...     history=torch.tensor([[1, 2, 3], [-1, 4, 5], [6, 7, 8]]),
        ...     history_valid=torch.ones(3, 3, dtype=torch.bool),
        ...     target=torch.tensor([6, 7, 9]),
        ...     source_topic=torch.tensor([2, 3, -1]),         # nothing logged for row 2
        ... )
        >>> loss, stats = model.loss(batch, log_q=torch.log(torch.full((3,), 0.05)))
        >>> loss.shape, stats.n_without_condition, stats.n_kept
        (torch.Size([]), 1, 2)
        >>> model.eval().embed_conditioned(                  # K_ex = 2 topics per user
        ...     batch.history, batch.history_valid, torch.tensor([[0, 1], [2, -1], [3, 0]])
        ... ).shape
        torch.Size([3, 2, 8])
    """

    def __init__(
        self,
        *,
        user_tower: UserTower,
        item_tower: ItemEncoder,
        association: ConditionAssociation,
        features: ItemFeatures,
        temperature: float = 0.05,
    ) -> None:
        problems = []
        source = getattr(user_tower, "conditions", None)
        if not isinstance(source, TopicConditions):
            problems.append(
                f"user_tower.conditions: expected TopicConditions, got {type(source).__name__}"
            )
        elif features.n_topics() > source.n_topics:
            problems.append(
                f"features.topics: item topics reach {features.n_topics() - 1}, outside the "
                f"user tower's vocabulary of n_topics = {source.n_topics}"
            )
        super().__init__(
            user_tower=user_tower,
            item_tower=item_tower,
            association=association,
            features=features,
            temperature=temperature,
            problems=problems,
        )
        assert isinstance(source, TopicConditions)  # checked above
        self.n_topics = source.n_topics

    def embed_conditioned(
        self,
        history: Tensor,
        history_valid: Tensor,
        conditions: Tensor,
        *,
        followed: Tensor | None = None,
    ) -> Tensor:
        """User embeddings phi(u, c) for serving, evaluation and training.

        Args:
            history: ``[B, L]`` int64 item ids, ``-1`` = padding.
            history_valid: ``[B, L]`` bool.
            conditions: ``[B]`` topics, or ``[B, C]`` (e.g. ``C = K_ex`` sampled followed
                topics), ``-1`` = padded slot.
            followed: ``[B, T]`` followed topics, for towers built with them.

        Returns:
            Unit-norm ``[B, D]`` or ``[B, C, D]``; zero rows at padded slots.
        """
        user = self.user_tower(
            ItemLookup(history, self.features()), history_valid, conditions, followed=followed
        ).embeddings  # [B, C, D]
        return user[:, 0] if conditions.dim() == 1 else user

    def conditions(self, batch: ConditionalBatch) -> Conditions:
        """The association's condition and keep-mask for every example of ``batch``: ``[B]``."""
        target_topics = None if self.item_topics is None else self.item_topics[batch.target]
        return self.association(source_topic=batch.source_topic, target_topics=target_topics)

    def trained_rows(self, batch: ConditionalBatch) -> Tensor:
        """``[B]`` bool: the examples `loss` trains on, whose items are its in-batch
        negatives; the association's keep-mask, computed without drawing a condition.
        A trainer's frequency estimate (logQ) counts these rows only."""
        target_topics = None if self.item_topics is None else self.item_topics[batch.target]
        return self.association.keeps(source_topic=batch.source_topic, target_topics=target_topics)

    def loss(self, batch: ConditionalBatch, log_q: Tensor) -> tuple[Tensor, ConditionalStats]:
        """Eq. 9 over the examples that have a condition, with in-batch negatives among them.

        Args:
            batch: a `ConditionalBatch` of ``B`` examples.
            log_q: ``[B]`` log sampling probability of each target item (streaming
                frequency estimate); subtracted from the logits of its column.

        Returns:
            The mean loss over the kept examples (scalar) and `ConditionalStats`. When
            no example has a condition the loss is a zero leaf that reaches no
            parameter (backward works; an optimiser step changes nothing); skip it.
        """
        sizes = _check_batch(batch, log_q, self.n_items)
        chosen = self.conditions(batch)
        keep = chosen.keep.nonzero().squeeze(1)  # [b] rows trained on
        b = int(keep.numel())
        followed = None if batch.followed is None else batch.followed[keep]  # [b, T]
        n_followed = (
            None
            if followed is None
            else int((followed == chosen.topic[keep].unsqueeze(1)).any(dim=1).sum())
        )
        stats = ConditionalStats(sizes["B"], sizes["B"] - b, n_followed)
        if b == 0:
            zero = torch.zeros((), dtype=log_q.dtype, device=log_q.device, requires_grad=True)
            return zero, stats
        target = batch.target[keep]  # [b]
        user = self.embed_conditioned(
            batch.history[keep],
            batch.history_valid[keep],
            chosen.topic[keep],
            followed=followed if self.user_tower.n_followed_topics else None,
        )  # [b, D]
        items = self.embed_items(target)  # [b, D]
        loss = sampled_softmax_loss(
            user,
            items,
            log_q[keep].to(items.dtype),
            temperature=self.temperature,
            item_ids=target,
        )
        return loss, stats

    def extra_repr(self) -> str:
        return f"n_topics={self.n_topics}, dim={self.dim}, temperature={self.temperature}"


def _check_batch(batch: ConditionalBatch, log_q: Tensor, n_items: int) -> dict[str, int]:
    where = "ConditionalRetrievalModel.loss"
    sizes = check_shapes(
        where,
        history=(batch.history, "B L"),
        history_valid=(batch.history_valid, "B L:bool"),
        target=(batch.target, "B"),
        source_topic=(batch.source_topic, "B"),
        followed=(batch.followed, "B T"),
        log_q=(log_q, "B:float"),
    )
    target = batch.target
    if target.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{where}: expected target of dtype int32 or int64, got {target.dtype}")
    check_ids(where, "target item ids", target, n_items, low=0, got="values in ")
    return sizes
