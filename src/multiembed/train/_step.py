"""One training step's math: the towers' forward and Eq. 9 over the (global) batch.

`TowerStep` is the module that `DistributedDataParallel` wraps: its forward runs
both towers and the association on this rank's rows. `in_batch_loss` then scores
those rows against the item embeddings of the whole global batch. In one process
the two together are exactly `RetrievalModel.loss`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiembed.nn.functional import best_slot_scores
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


def in_batch_loss(
    chosen: Tensor,
    items: Tensor,
    log_q: Tensor,
    item_ids: Tensor,
    *,
    start: int,
    temperature: float,
    slot_mask: Tensor | None = None,
) -> Tensor:
    """Per-row Eq. 9 loss of ``b`` local users against all ``N`` in-batch items: ``[b]``.

    Row i (global row ``start + i``) is scored against every column k:
    ``chosen[i] . items[k] / temperature - log_q[k]``; its positive is column
    ``start + i``; other columns holding the same item id (accidental hits) are
    masked. With ``start = 0`` and ``b = N`` this is `sampled_softmax_loss` with
    ``reduction="none"``.

    Args:
        chosen: ``[b, D]`` selected user embeddings of the local rows.
        items: ``[N, D]`` item embeddings of the global batch (``N >= start + b``).
        log_q: ``[N]`` log sampling probability of each column's item.
        item_ids: ``[N]`` item ids of the columns.
        start: global row of the first local row.
        temperature: divides the dot products.
        slot_mask: ``[b, K]`` used slots when ``chosen`` holds every embedding of each
            user, ``[b, K, D]``: each column is then scored by the row's best slot
            (`best_slot_scores`, ``model.scoring = "max"``).

    Example:
        >>> from multiembed.nn.functional import sampled_softmax_loss
        >>> u, v = torch.eye(3)[:, :2] + 0.1, torch.eye(3)[:, :2]
        >>> lq, ids = torch.tensor([-1.0, -2.0, -0.5]), torch.tensor([4, 5, 4])
        >>> full = sampled_softmax_loss(u, v, lq, temperature=0.5, item_ids=ids, reduction="none")
        >>> part = in_batch_loss(u[1:], v, lq, ids, start=1, temperature=0.5)
        >>> torch.allclose(full[1:], part)
        True
    """
    b = chosen.shape[0]
    rows = torch.arange(b, device=chosen.device)
    positives = rows + start  # [b] column of each row's own target
    dots = chosen @ items.T if slot_mask is None else best_slot_scores(chosen, items, slot_mask)
    logits = dots / temperature - log_q.to(items.dtype).unsqueeze(0)  # [b, N]
    hits = item_ids[positives].unsqueeze(1) == item_ids.unsqueeze(0)  # [b, N]
    hits[rows, positives] = False  # the positive itself is never masked
    logits = logits.masked_fill(hits, float("-inf"))
    return F.cross_entropy(logits, positives, reduction="none")
