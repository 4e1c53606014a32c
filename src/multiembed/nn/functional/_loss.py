"""In-batch sampled softmax with logQ correction and accidental-hit masking (Eq. 9)."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from multiembed.nn.functional._checks import (
    check_positive,
    check_shapes,
)

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def best_slot_scores(user_emb: Tensor, item_emb: Tensor, slot_mask: Tensor) -> Tensor:
    """Each item scored by each user's best embedding: ``[B, K, D], [N, D], [B, K] -> [B, N]``.

    scores[b, n] = max over the used slots j of user_emb[b, j] . item_emb[n]: the score
    that retrieval ranks by when it takes the maximum over a user's embeddings
    (Section 4.1.1). Unused slots (``slot_mask`` False) never win; every row needs at
    least one used slot.

    Example:
        >>> users = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> items = torch.tensor([[0.6, 0.8], [-1.0, 0.0]])
        >>> best_slot_scores(users, items, torch.tensor([[True, True]]))
        tensor([[0.8000, 0.0000]])
        >>> best_slot_scores(users, items, torch.tensor([[True, False]]))
        tensor([[ 0.6000, -1.0000]])
    """
    where = "best_slot_scores"
    check_shapes(
        where,
        user_emb=(user_emb, "B K D:float"),
        item_emb=(item_emb, "N D:float"),
        slot_mask=(slot_mask, "B K:bool"),
    )
    if not bool(slot_mask.any(dim=1).all()):
        raise ValueError(f"{where}: expected at least one used slot per row of slot_mask")
    device = user_emb.device.type
    if torch.is_autocast_enabled(device):  # the product's autocast dtype, as for `@`
        dtype = torch.get_autocast_dtype(device)
        user_emb, item_emb = user_emb.to(dtype), item_emb.to(dtype)
    best: Tensor = _BestSlot.apply(user_emb, item_emb, slot_mask)
    return best


class _BestSlot(torch.autograd.Function):
    """`best_slot_scores` with a backward that builds the ``[B, K, N]`` gradient once.

    The values and gradients are those of ``(user @ item.T).masked_fill(...).amax(1)``
    bit for bit (ties share the gradient equally, as ``amax`` does), but autograd's
    chain for that expression converts the ``[B, K, N]`` tie mask to int64 to count it
    and copies the gradient again for the masking; here the mask is counted in the
    gradient's dtype and the masked slots need no pass (they never equal the maximum).
    """

    @staticmethod
    def forward(ctx: Any, user_emb: Tensor, item_emb: Tensor, slot_mask: Tensor) -> Tensor:
        b, k, d = user_emb.shape
        scores = user_emb.reshape(b * k, d).mm(item_emb.T).view(b, k, -1)  # [B, K, N]
        scores.masked_fill_(~slot_mask.unsqueeze(-1), torch.finfo(scores.dtype).min)
        best = scores.amax(dim=1)  # [B, N]
        ctx.save_for_backward(user_emb, item_emb, scores, best)
        return best

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        user_emb, item_emb, scores, best = ctx.saved_tensors
        b, k, d = user_emb.shape
        wins = torch.eq(scores, best.unsqueeze(1)).to(grad.dtype)  # [B, K, N]
        wins.mul_(grad.unsqueeze(1) / wins.sum(dim=1, keepdim=True))
        per_slot = wins.view(b * k, -1)  # [B*K, N] d(best) / d(scores) times grad
        user_grad = item_grad = None
        if ctx.needs_input_grad[0]:
            user_grad = per_slot.mm(item_emb).view(b, k, d)
        if ctx.needs_input_grad[1]:
            item_grad = per_slot.T.mm(user_emb.reshape(b * k, d))
        return user_grad, item_grad, None


def in_rows(ids: Tensor, rows: Tensor) -> Tensor:
    """``[b, N]`` bool: whether ``ids [N]`` (non-negative) occurs in each of ``rows [b, L]``
    (negative entries: padding, never an id).

    One sort of the ids and the row entries together places each entry among the ids'
    distinct values, and the hits are marked per row: time and memory grow with the
    batch (``[b, N]``, ``N + b L`` values), not with the largest item id, where
    comparing every pair would hold ``[b, N, L]``.

    >>> in_rows(torch.tensor([3, 5, 7]), torch.tensor([[7, -1, 3], [-1, -1, -1]]))
    tensor([[ True, False,  True],
            [False, False, False]])
    """
    b, length = rows.shape
    n = ids.numel()
    flat = rows.reshape(-1).to(ids.dtype)  # [b * L]
    _, place = torch.unique(torch.cat([ids, flat]), return_inverse=True)  # [N + b * L]
    of_ids, of_rows = place[:n], place[n:]
    values = int(place.max()) + 1 if place.numel() else 0
    is_id = torch.zeros(values, dtype=torch.bool, device=ids.device)
    is_id[of_ids] = True
    column = is_id.cumsum(0) - 1  # [U] a value's column among the ids' distinct values
    found = is_id[of_rows]  # padding (negative) is no id
    row = torch.arange(b, device=rows.device).repeat_interleave(length)
    marks = torch.zeros(b, int(is_id.sum()), dtype=torch.bool, device=ids.device)
    marks[row[found], column[of_rows[found]]] = True
    return marks.index_select(1, column[of_ids])


def sampled_softmax_logits(
    user_emb: Tensor,
    item_emb: Tensor,
    item_log_q: Tensor,
    *,
    temperature: float = 1.0,
    item_ids: Tensor | None = None,
    slot_mask: Tensor | None = None,
    positive_emb: Tensor | None = None,
    start: int = 0,
    history_ids: Tensor | None = None,
) -> Tensor:
    """The ``[b, N]`` logits of Eq. 9: row i scores user i against every in-batch item.

    logits[i, k] = user_emb[i] . item_emb[k] / temperature - item_log_q[k]. The
    logQ correction subtracts the log sampling probability of the column's item,
    so frequent items, over-represented as negatives, are scored down (Yi et al.,
    2019). Row i's positive is column ``start + i`` (the diagonal when ``start = 0``
    and ``b = N``); any other column holding the same item id is an accidental hit
    and set to -inf, and so is, with `history_ids`, any column holding an item of the
    row's own history: an item the user engaged is no negative of what it engages
    next. The positive itself is never masked.

    Args:
        user_emb: ``[b, D]`` the selected user embedding o_u^{j*} per row.
        item_emb: ``[N, D]`` the in-batch target item embeddings o_y, ``N >= start + b``.
        item_log_q: ``[N]`` log p_y, the (estimated) sampling probability of each target.
        temperature: divides the dot products (not the correction), > 0.
        item_ids: ``[N]`` integer item ids for accidental-hit masking; None: no masking.
        slot_mask: with it, ``user_emb`` is every embedding of each user, ``[b, K, D]``,
            and each item is scored by the user's best used one (`best_slot_scores`)
            instead of by one selected embedding.
        positive_emb: ``[b, D]`` with ``slot_mask``: the embedding that scores each
            row's own positive instead of the best one, e.g. the straight-through
            Gumbel association of Section 3.2.4 (negatives keep the best score).
        start: the column of row 0's positive: rows are a slice of a larger batch
            (one process's share under data parallelism).
        history_ids: ``[b, L]`` integer item ids of each row's history (negative:
            padding, never an item), with `item_ids`; None: history items stay negatives.

    Returns:
        ``[b, N]`` logits.

    Example:
        >>> user = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> sampled_softmax_logits(user, user, torch.log(torch.tensor([0.5, 0.25])))
        tensor([[1.6931, 1.3863],
                [0.6931, 2.3863]])
        >>> sampled_softmax_logits(user[1:], user, torch.zeros(2), start=1)
        tensor([[0., 1.]])
    """
    where = "sampled_softmax_logits"
    sizes = check_shapes(
        where,
        user_emb=(user_emb, "B D:float" if slot_mask is None else "B K D:float"),
        item_emb=(item_emb, "N D:float"),
        item_log_q=(item_log_q, "N:float"),
        item_ids=(item_ids, "N:int"),
        slot_mask=(slot_mask, "B K"),
        positive_emb=(positive_emb, "B D"),
        history_ids=(history_ids, "B L:int"),
    )
    check_positive(where, "temperature", temperature)
    b, n = sizes["B"], sizes["N"]
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= n - b:
        raise ValueError(f"{where}: expected start in [0, N - B] = [0, {n - b}], got {start!r}")
    if positive_emb is not None and slot_mask is None:
        raise ValueError(f"{where}: positive_emb needs slot_mask (best-embedding scoring)")
    if history_ids is not None and item_ids is None:
        raise ValueError(f"{where}: history_ids needs item_ids (which items the columns hold)")
    rows = torch.arange(b, device=item_emb.device)
    positives = rows + start  # [b] each row's own column
    if slot_mask is None:
        dots = user_emb @ item_emb.T  # [b, N]
    else:
        dots = best_slot_scores(user_emb, item_emb, slot_mask)  # [b, N]
        if positive_emb is not None:
            own = (positive_emb * item_emb[positives]).sum(dim=-1)  # [b]
            dots = dots.index_put((rows, positives), own.to(dots.dtype))
    logits = dots / temperature - item_log_q.unsqueeze(0)
    if item_ids is None:
        return logits
    hits = item_ids[positives].unsqueeze(1) == item_ids.unsqueeze(0)  # [b, N]
    if history_ids is not None:
        hits |= in_rows(item_ids, history_ids)
    hits[rows, positives] = False
    return logits.masked_fill(hits, float("-inf"))


def sampled_softmax_loss(
    user_emb: Tensor,
    item_emb: Tensor,
    item_log_q: Tensor,
    *,
    temperature: float = 1.0,
    item_ids: Tensor | None = None,
    reduction: Reduction = "mean",
    slot_mask: Tensor | None = None,
    positive_emb: Tensor | None = None,
    start: int = 0,
    history_ids: Tensor | None = None,
) -> Tensor:
    """In-batch sampled softmax loss (Eq. 9): -log softmax(logits)[i, start + i] per row.

    In the paper only the selected user embedding o_u^{j*} scores the negatives (a
    choice for memory); the caller passes it. With ``slot_mask`` the caller passes
    every embedding ``[B, K, D]`` and each item, positive or negative, is scored by
    the user's best one, the score retrieval ranks by. See `sampled_softmax_logits`
    for the logits, the logQ sign and accidental hits.

    Args:
        user_emb: `[B, D]` the selected user embedding per example (`[B, K, D]` with
            ``slot_mask``).
        item_emb: `[B, D]` the target item embedding per example.
        item_log_q: `[B]` log sampling probability of each target.
        temperature: divides the dot products, > 0.
        item_ids: `[B]` integer item ids for accidental-hit masking; None: no masking.
        reduction: "mean" (scalar), "sum" (scalar) or "none" (`[B]` per-row losses).
        slot_mask: `[B, K]` used slots of ``user_emb`` `[B, K, D]`; None for `[B, D]`.
        positive_emb, start, history_ids: see `sampled_softmax_logits` (the associated
            embedding scoring the positive under best-embedding scoring; rows a slice of
            the batch; each row's history, whose items are not its negatives).

    Returns:
        The loss, a scalar or `[B]`.

    Example:
        >>> user = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> sampled_softmax_loss(user, user, torch.zeros(2), reduction="none")
        tensor([0.3133, 0.3133])
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"sampled_softmax_loss: expected reduction in {_REDUCTIONS}, got {reduction!r}"
        )
    logits = sampled_softmax_logits(
        user_emb,
        item_emb,
        item_log_q,
        temperature=temperature,
        item_ids=item_ids,
        slot_mask=slot_mask,
        positive_emb=positive_emb,
        start=start,
        history_ids=history_ids,
    )
    labels = torch.arange(logits.shape[0], device=logits.device) + start
    return F.cross_entropy(logits, labels, reduction=reduction)
