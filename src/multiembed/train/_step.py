"""One training step's math: the towers' forward and Eq. 9 over the (global) batch.

`TowerStep` is the module that `DistributedDataParallel` wraps: its forward runs
both towers and the association on this rank's rows. `RetrievalModel.eq9` then
scores those rows against the item embeddings of the whole global batch. In one
process the two together are exactly `RetrievalModel.loss`.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from multiembed.nn.retrieval import RetrievalModel


class TowerOutputs(NamedTuple):
    """Forward outputs of ``b`` local rows.

    Attributes:
        user: ``[b, K, D]`` user embeddings.
        slot_mask: ``[b, K]`` bool, used slots.
        chosen: ``[b, D]`` the associated embedding o_u^{j*} (Eq. 8 or Gumbel).
        slot: ``[b]`` the associated slot j*.
        item: ``[b, D]`` target item embeddings.
    """

    user: Tensor
    slot_mask: Tensor
    chosen: Tensor
    slot: Tensor
    item: Tensor


class TowerStep(nn.Module):
    """Both towers and the association of a `RetrievalModel`, as one forward."""

    def __init__(self, model: RetrievalModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, history: Tensor, history_valid: Tensor, target: Tensor, followed: Tensor | None
    ) -> TowerOutputs:
        user = self.model.embed_users(history, history_valid, followed=followed)
        item = self.model.embed_items(target)  # [b, D]
        chosen = self.model.association(user.embeddings, item, user.slot_mask)
        return TowerOutputs(user.embeddings, user.slot_mask, chosen.embedding, chosen.slot, item)
