"""The implicit-interest retrieval model: user tower, item tower, association, Eq. 9 loss.

    o_u^j = user_tower(history)            [B, K, D]   (unit norm)
    o_y   = item_tower(target)             [B, D]      (unit norm)
    j*    = association(o_u, o_y)          [B]         (Eq. 8, or straight-through Gumbel)
    loss  = in-batch sampled softmax of o_u^{j*} against every o_y in the batch,
            dot products / temperature, minus log q of the column's item,
            accidental hits masked                                            (Eq. 9)

Only the selected embedding meets the negatives, as in the paper. Every loss call
also returns collapse diagnostics (Section 3.2.4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Generic, Literal, NamedTuple, TypeVar, get_args

import torch
from torch import Tensor, nn

from multiembed.nn.association import AssociationStrategy
from multiembed.nn.features import ItemFeatures, ItemLookup, encode_items
from multiembed.nn.functional import (
    effective_interests,
    mean_pairwise_cosine,
    sampled_softmax_loss,
    slot_win_share,
)
from multiembed.nn.functional._checks import module_problems, raise_problems
from multiembed.nn.item_tower import ItemEncoder
from multiembed.nn.user_tower import UserEmbeddings, UserTower

Scoring = Literal["associated", "max"]
"""How Eq. 9 scores in-batch items: by the associated embedding, or by the best one."""

HistoryNegatives = Literal["keep", "drop", "auto"]
"""Whether an in-batch item in a row's own history is a negative of that row: always,
never, or not while the model trains one embedding per user (`RetrievalModel.drops_history`)."""


class Negatives(NamedTuple):
    """How Eq. 9 treats the in-batch items of a row (see `RetrievalModel`).

    Attributes:
        scoring: ``"associated"`` (the paper) or ``"max"``: which embedding scores them.
        history: an item in the row's own history stays a negative (``"keep"``, the
            plain in-batch softmax), is left out of the row's softmax (``"drop"``), or is
            left out while the model has one embedding per user (``"auto"``).
    """

    scoring: Scoring = "associated"
    history: HistoryNegatives = "keep"


class RetrievalBatch(NamedTuple):
    """One training batch of ``B`` examples.

    Attributes:
        history: ``[B, L]`` int64 item ids of the history, oldest first, ``-1`` = padding.
        history_valid: ``[B, L]`` bool, True for a valid item with a positive action.
        target: ``[B]`` int64 target item ids.
        followed: ``[B, T]`` int64 followed topics padded with ``-1``, for towers that
            read them; None otherwise.
    """

    history: Tensor
    history_valid: Tensor
    target: Tensor
    followed: Tensor | None = None


class CollapseDiagnostics(NamedTuple):
    """Do a user's K embeddings stay distinct, and do they all win targets?

    Attributes:
        mean_pairwise_cosine: scalar, mean cosine between a user's used embeddings (near
            1: collapsed); NaN when no user has two used slots (always for K = 1).
        slot_win_share: ``[K]`` share of targets each slot won.
        effective_interests: scalar in [1, K], exp(entropy of the shares) (near 1: one slot
            wins everything).
    """

    mean_pairwise_cosine: Tensor
    slot_win_share: Tensor
    effective_interests: Tensor


def collapse_diagnostics(
    user_emb: Tensor, slot_mask: Tensor, selected: Tensor
) -> CollapseDiagnostics:
    """Collapse diagnostics of one batch, without gradient.

    Args:
        user_emb: ``[B, K, D]`` user embeddings.
        slot_mask: ``[B, K]`` bool, False for unused slots.
        selected: ``[B]`` int64 slot chosen for each target.

    Example:
        >>> user = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
        >>> d = collapse_diagnostics(user, torch.ones(2, 2, dtype=torch.bool), torch.tensor([0, 0]))
        >>> d.mean_pairwise_cosine, d.effective_interests
        (tensor(0.5000), tensor(1.))
    """
    with torch.no_grad():
        share = slot_win_share(selected, user_emb.shape[1])
        return CollapseDiagnostics(
            mean_pairwise_cosine=mean_pairwise_cosine(user_emb.detach(), slot_mask),
            slot_win_share=share,
            effective_interests=effective_interests(share.to(user_emb.dtype)),
        )


_FEATURE_BUFFERS = ("vector", "vector_present", "codes", "topics")
"""The `ItemFeatures` parts a `TwoTowerModel` keeps as non-persistent ``item_*`` buffers."""

A = TypeVar("A")
"""The association's type: `AssociationStrategy`, or Conditional Retrieval's."""


class TwoTowerModel(nn.Module, Generic[A]):
    """What both retrieval models are: a user tower, an item tower and an association
    over one item table, compared by dot products over a temperature.

    Args:
        user_tower, item_tower, association, features, temperature: as in
            `RetrievalModel` and `multiembed.nn.conditional.ConditionalRetrievalModel`.
        problems: the subclass's own argument problems, reported after the shared ones
            in one `ValueError`.
    """

    item_vector: Tensor | None
    item_vector_present: Tensor | None
    item_codes: Tensor | None
    item_topics: Tensor | None
    association: A

    def __init__(
        self,
        *,
        user_tower: UserTower,
        item_tower: ItemEncoder,
        association: A,
        features: ItemFeatures,
        temperature: float,
        problems: Sequence[str] = (),
    ) -> None:
        super().__init__()
        found = module_problems(
            user_tower=user_tower, item_tower=item_tower, association=association
        )
        if isinstance(temperature, bool) or not (
            isinstance(temperature, int | float) and 0 < temperature < math.inf
        ):
            found.append(f"temperature = {temperature!r}: must be > 0 and finite")
        if not found and user_tower.dim != item_tower.out_dim:
            found.append(
                f"item_tower.out_dim = {item_tower.out_dim}: must equal user_tower.dim = "
                f"{user_tower.dim}"
            )
        raise_problems(type(self).__name__, [*found, *problems])
        features.check()
        self.user_tower: UserTower = user_tower
        self.item_tower: ItemEncoder = item_tower
        self.association = association
        self.temperature = float(temperature)
        self.dim = user_tower.dim
        self.n_items = features.n_items
        for name in _FEATURE_BUFFERS:
            self.register_buffer(f"item_{name}", getattr(features, name), persistent=False)

    def features(self) -> ItemFeatures:
        """The item feature table, on the model's device."""
        values = {name: getattr(self, f"item_{name}") for name in _FEATURE_BUFFERS}
        return ItemFeatures(n_items=self.n_items, **values)

    def embed_items(self, item_ids: Tensor) -> Tensor:
        """``item_ids [*S]`` -> unit-norm item embeddings ``[*S, D]``."""
        return encode_items(self.item_tower, ItemLookup(item_ids, self.features()))


class RetrievalModel(TwoTowerModel[AssociationStrategy]):
    """Two towers and an association, trained with Eq. 9.

    Args:
        user_tower: a `UserTower` with conditions drawn from the history
            (`ExtractedConditions`).
        item_tower: an `nn.Module` mapping `ItemInputs` keyword features of ids ``[*S]``
            to unit-norm ``[*S, D]`` (e.g. `ItemTower`), with the user tower's ``D``.
        association: an `nn.Module` following `AssociationStrategy`.
        features: the item feature table, kept as non-persistent buffers (they move with
            ``.to(device)`` but stay out of the state dict: they are data, not weights).
        temperature: fixed divisor of the dot products, > 0; about 0.05 suits unit-norm
            embeddings.
        negatives: `Negatives`, how Eq. 9 treats the in-batch items. Its ``scoring``,
            ``"associated"`` (the paper): the associated embedding o_u^{j*} scores the
            positive and every negative; ``"max"``: each negative is scored by the user's
            best embedding, the score that retrieval and HR@K rank by, and the positive
            by the associated one. With arg-max association (Eq. 8) that is the best one
            too; with the Gumbel association it is the straight-through sample of Section
            3.2.4, so the Gumbel fix for collapse acts under both scorings. Its
            ``history``: an in-batch item that is in the example's own history stays a
            negative (``"keep"``, the plain in-batch softmax), or is left out of that
            row's softmax (``"drop"``: the user engaged it, so it is no negative), or is
            left out while the model has one embedding per user (``"auto"``: K = 1, as
            the single tower, or a DCM after `serve_interests` (1)), where on the shared
            public splits it helps, and kept while it has K, where it does not.

    Example:
        >>> from multiembed.config import ModelConfig
        >>> from multiembed.nn.builders import build_model
        >>> features = ItemFeatures(n_items=20, vector=torch.randn(20, 3))
        >>> config = ModelConfig(name="dcm", k=2, dim=8, hidden_dim=16, scoring="associated")
        >>> model = build_model(config, features=features)
        >>> batch = RetrievalBatch(
        ...     history=torch.tensor([[1, 2, 3], [-1, 4, 5]]),
        ...     history_valid=torch.ones(2, 3, dtype=torch.bool),
        ...     target=torch.tensor([6, 7]),
        ... )
        >>> loss, diagnostics = model.loss(batch, log_q=torch.log(torch.full((2,), 0.05)))
        >>> loss.shape, diagnostics.slot_win_share.shape
        (torch.Size([]), torch.Size([2]))
    """

    def __init__(
        self,
        *,
        user_tower: UserTower,
        item_tower: ItemEncoder,
        association: AssociationStrategy,
        features: ItemFeatures,
        temperature: float = 0.05,
        negatives: Negatives = Negatives(),
    ) -> None:
        problems = []
        scoring = negatives.scoring
        if scoring not in get_args(Scoring):
            problems.append(f"scoring = {scoring!r}: must be one of {list(get_args(Scoring))}")
        if negatives.history not in get_args(HistoryNegatives):
            problems.append(
                f"history = {negatives.history!r}: must be one of "
                f"{list(get_args(HistoryNegatives))}"
            )
        if isinstance(user_tower, UserTower) and user_tower.k is None:
            problems.append("user_tower: expected conditions drawn from the history, got topics")
        super().__init__(
            user_tower=user_tower,
            item_tower=item_tower,
            association=association,
            features=features,
            temperature=temperature,
            problems=problems,
        )
        self.scoring: Scoring = scoring
        self.history_negatives: HistoryNegatives = negatives.history
        assert user_tower.k is not None  # checked above
        self.k: int = user_tower.k

    def serve_interests(self, k: int) -> None:
        """Extract ``k`` interests per user from now on, in training and serving alike.

        Only for an extractor whose weights do not depend on K (DCM's: K is the number
        of farthest-point seeds, a setting of the routing); ``train.select_interests``
        checks that a model built with the new K takes these weights.
        """
        conditions = self.user_tower.conditions
        extractor = getattr(conditions, "extractor", None)
        if extractor is None or not (isinstance(k, int) and k >= 1):
            raise ValueError(
                f"serve_interests: expected extracted conditions and k >= 1, got {k!r}"
            )
        extractor.k = k
        conditions.k = k + int(getattr(conditions, "global_slot", False))
        self.user_tower.k = conditions.k
        self.k = conditions.k

    def embed_users(
        self, history: Tensor, history_valid: Tensor, *, followed: Tensor | None = None
    ) -> UserEmbeddings:
        """``history [B, L]`` ids (``-1`` pads), ``history_valid [B, L]`` -> `UserEmbeddings`."""
        history_items = ItemLookup(history, self.features())
        return self.user_tower(history_items, history_valid, followed=followed)

    def loss(self, batch: RetrievalBatch, log_q: Tensor) -> tuple[Tensor, CollapseDiagnostics]:
        """Eq. 9 on one batch, with in-batch negatives, logQ and accidental-hit masking.

        Args:
            batch: a `RetrievalBatch` of ``B`` examples.
            log_q: ``[B]`` log sampling probability of each target item (streaming
                frequency estimate); subtracted from the logits of its column.

        Returns:
            The mean loss (scalar) and the batch's `CollapseDiagnostics`.
        """
        b = batch.target.shape[0] if batch.target.dim() == 1 else -1
        if batch.target.dim() != 1 or batch.history.dim() != 2 or batch.history.shape[0] != b:
            raise ValueError(
                f"RetrievalModel.loss: expected history [B, L] and target [B], got "
                f"{list(batch.history.shape)} and {list(batch.target.shape)}"
            )
        if log_q.shape != (b,) or not log_q.is_floating_point():
            raise ValueError(
                f"RetrievalModel.loss: expected log_q of a floating dtype and shape [{b}], "
                f"got {log_q.dtype} of shape {list(log_q.shape)}"
            )
        user = self.embed_users(batch.history, batch.history_valid, followed=batch.followed)
        target_emb = self.embed_items(batch.target)  # [B, D]
        chosen = self.association(user.embeddings, target_emb, user.slot_mask)
        loss = self.eq9(
            user.embeddings,
            user.slot_mask,
            chosen.embedding,
            target_emb,
            log_q,
            batch.target,
            history=batch.history,
        ).mean()
        return loss, self.diagnostics(user.embeddings, user.slot_mask, chosen.slot)

    def eq9(
        self,
        user_emb: Tensor,
        slot_mask: Tensor,
        chosen: Tensor,
        items: Tensor,
        log_q: Tensor,
        item_ids: Tensor,
        *,
        start: int = 0,
        history: Tensor | None = None,
    ) -> Tensor:
        """Per-row Eq. 9 loss ``[b]`` of ``b`` users against the ``N`` in-batch items,
        under this model's `scoring` (and `history_negatives`: `drops_history`).

        Args:
            user_emb: ``[b, K, D]`` every embedding of each user; ``slot_mask`` ``[b, K]``.
            chosen: ``[b, D]`` the associated embedding o_u^{j*} of each row.
            items: ``[N, D]`` the batch's target embeddings; ``log_q``, ``item_ids`` ``[N]``.
            start: column of row 0's own target (rows are a slice of the batch).
            history: ``[b, L]`` each row's history (item ids, -1 padding), whose items
                are not its negatives where `drops_history`.
        """
        best = self.scoring == "max"
        return sampled_softmax_loss(
            user_emb if best else chosen,
            items,
            log_q.to(items.dtype),
            temperature=self.temperature,
            item_ids=item_ids,
            slot_mask=slot_mask if best else None,
            positive_emb=chosen if best else None,
            start=start,
            reduction="none",
            history_ids=history if self.drops_history() else None,
        )

    def drops_history(self) -> bool:
        """Eq. 9 leaves a row's own history items out of its negatives now: always with
        ``"drop"``, and with ``"auto"`` while the model has one embedding per user."""
        return self.history_negatives == "drop" or (
            self.history_negatives == "auto" and self.k == 1
        )

    def diagnostics(
        self, user_emb: Tensor, slot_mask: Tensor, selected: Tensor
    ) -> CollapseDiagnostics:
        """`collapse_diagnostics` of ``[B, K, D]`` embeddings, ``[B, K]`` mask, ``[B]`` slots."""
        return collapse_diagnostics(user_emb, slot_mask, selected)

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, dim={self.dim}, temperature={self.temperature}, "
            f"scoring={self.scoring!r}, history_negatives={self.history_negatives!r}"
        )
