"""PinnerFormer-style subsequences (Appendix B): one condition per topic of the history."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiembed.nn.extractors._common import (
    check_sequence,
    ensure_a_slot,
)
from multiembed.nn.extractors.base import Interests
from multiembed.nn.functional._checks import check_ids, raise_problems, size_problems


class SubsequenceExtractor(nn.Module):
    """Split the history by fixed item topics; one condition per non-empty subsequence.

    Topics come from offline k-means over the items' pretrained vectors
    (`kmeans_topics`, `assign_topics`) and are held here as the buffer
    ``item_topics [n_items]`` (``-1``: no topic, e.g. no vector). Because the topics
    are fixed item metadata, the extractor reads them through ``item_ids``: it is the
    one extractor that needs that argument of the `InterestExtractor` call.

    A subsequence gathers the real, valid items of one topic (items with a topic of
    ``-1`` join none). The ``K`` largest subsequences fill the slots, largest first
    (ties: lower topic first); each gives

        c_t = m_t + MLP(m_t) + E_t

    with m_t the mean summary of its items, a 2-layer GELU MLP and E_t a learned topic
    embedding. Importance is the subsequence size. Slots beyond the non-empty
    subsequences are unused and zero; a history with none keeps slot 0 (zero).

    The paper's PFS feeds PinnerFormer outputs as features; this in-model version keeps
    the part the comparison is about, conditions fixed by pre-defined clusters rather
    than learned ones.

    Args:
        dim: width ``D`` of the item summaries and of the conditions.
        k: number of slots ``K``, at most ``n_topics``.
        item_topics: ``[n_items]`` int64 topic per item, ``-1`` for none.
        n_topics: number of topics ``T``; every topic id is below it.
        hidden_dim: width of the MLP (default ``dim``).

    Shapes: ``e [B, L, D], mask [B, L], valid [B, L], item_ids [B, L]`` -> conditions
    ``[B, K, D]``, slot_mask and importance ``[B, K]``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> extractor = SubsequenceExtractor(
        ...     dim=4, k=2, item_topics=torch.tensor([0, 1, 1, -1]), n_topics=3
        ... )
        >>> ids = torch.tensor([[1, 0, 2, -1], [3, 0, -1, -1]])
        >>> mask = ids >= 0
        >>> interests = extractor(torch.randn(2, 4, 4), mask, mask, item_ids=ids)
        >>> interests.importance.tolist(), interests.slot_mask.tolist()
        ([[2.0, 1.0], [1.0, 0.0]], [[True, True], [True, False]])
    """

    item_topics: Tensor

    def __init__(
        self,
        *,
        dim: int,
        k: int,
        item_topics: Tensor,
        n_topics: int,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        hidden = dim if hidden_dim is None else hidden_dim
        where = "SubsequenceExtractor"
        problems = size_problems(dim=dim, k=k, n_topics=n_topics, hidden_dim=hidden)
        if not problems[1] and not problems[2] and k > n_topics:
            problems.append(f"k = {k}: must be <= n_topics = {n_topics}")
        if item_topics.dim() != 1 or item_topics.dtype != torch.int64:
            problems.append(
                f"item_topics: must be int64 of shape [n_items], "
                f"got {item_topics.dtype} of shape {list(item_topics.shape)}"
            )
        elif (
            item_topics.numel()
            and not problems[2]
            and (int(item_topics.min()) < -1 or int(item_topics.max()) >= n_topics)
        ):
            problems.append(
                f"item_topics: values must lie in [-1, {n_topics - 1}], got "
                f"[{int(item_topics.min())}, {int(item_topics.max())}]"
            )
        raise_problems(where, problems)
        self.dim = dim
        self.k = k
        self.n_topics = n_topics
        self.register_buffer("item_topics", item_topics.clone())
        self.topic_table = nn.Embedding(n_topics, dim)  # E_t
        self.mlp1 = nn.Linear(dim, hidden)
        self.mlp2 = nn.Linear(hidden, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Topic embeddings ~ N(0, 0.02^2); Xavier MLP, zero biases."""
        nn.init.trunc_normal_(self.topic_table.weight, std=0.02)
        for linear in (self.mlp1, self.mlp2):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor | None = None,
        padding_zeroed: bool = False,
    ) -> Interests:
        """Pool each topic's subsequence (see the class docstring for shapes)."""
        where = "SubsequenceExtractor"
        check_sequence(where, self.dim, e, mask, valid)
        n_items = self.item_topics.shape[0]
        if item_ids is None:
            raise ValueError(f"{where}: expected item_ids of shape {list(mask.shape)}, got None")
        if item_ids.dtype != torch.int64 or item_ids.shape != mask.shape:
            raise ValueError(
                f"{where}: expected item_ids of dtype torch.int64 and shape {list(mask.shape)}, "
                f"got {item_ids.dtype} of shape {list(item_ids.shape)}"
            )
        check_ids(where, "item ids", item_ids, n_items)
        b, _, d = e.shape
        topic = self.item_topics[item_ids.clamp_min(0)]  # [B, L]
        member = mask & valid & (item_ids >= 0) & (topic >= 0)  # [B, L]
        one_hot = F.one_hot(topic.clamp_min(0), self.n_topics).to(e.dtype)
        one_hot = one_hot * member.unsqueeze(-1)  # [B, L, T]
        e = torch.where(member.unsqueeze(-1), e, 0.0)
        counts = one_hot.sum(dim=1)  # [B, T]
        sums = torch.einsum("blt,bld->btd", one_hot, e)  # [B, T, D]
        # Largest first; the stable sort keeps the lower topic first among equal sizes.
        top = counts.sort(dim=1, descending=True, stable=True).indices[:, : self.k]  # [B, K]
        size = counts.gather(1, top)  # [B, K]
        mean = (
            sums.gather(1, top.unsqueeze(-1).expand(b, self.k, d)) / size.clamp_min(1.0)[..., None]
        )  # [B, K, D]
        conditions = mean + self.mlp2(F.gelu(self.mlp1(mean))) + self.topic_table(top)
        used = size > 0  # [B, K]
        return Interests(conditions * used.unsqueeze(-1), ensure_a_slot(used), size)
