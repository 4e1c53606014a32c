"""Pure tensor helper of Conditional Retrieval: sampling one of an item's topics."""

from __future__ import annotations

import torch
from torch import Tensor

from multiembed.nn.functional._checks import check_generator, check_shapes


def sample_item_topic(item_topics: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Sample one topic per row uniformly among the row's topics (Lin et al.'s association).

    Row ``b`` draws ``u_b ~ U[0, 1)`` from ``generator`` (exactly ``B`` draws per call,
    whatever the topics) and takes the ``floor(u_b * n_b)``-th real topic in slot order,
    where ``n_b`` counts the row's real (``>= 0``) slots. Padding may sit in any slot.
    A topic listed twice in a row counts twice; item tables list each topic once.

    Args:
        item_topics: ``[B, T]`` integer topic ids of each row's item, ``-1`` = padding
            (``T = 0`` allowed: no row has a topic).
        generator: the only source of randomness; the draws are made on its device and
            moved to ``item_topics``'s, so a CPU generator serves a GPU batch.

    Returns:
        ``(topic, has_topic)``: ``topic [B]`` int64, ``-1`` where the row has no topic;
        ``has_topic [B]`` bool.

    Example:
        >>> topics = torch.tensor([[3, -1, 5], [-1, -1, -1], [7, -1, -1]])   # [B=3, T=3]
        >>> topic, has_topic = sample_item_topic(topics, torch.Generator().manual_seed(0))
        >>> topic[0].item() in (3, 5), topic[1:].tolist(), has_topic.tolist()
        (True, [-1, 7], [True, False, True])
    """
    where = "sample_item_topic"
    check_shapes(where, item_topics=(item_topics, "B T:int"))
    check_generator(where, generator)
    b = item_topics.shape[0]
    real = item_topics >= 0  # [B, T]
    count = real.sum(dim=1)  # [B]
    u = torch.rand(b, generator=generator, device=generator.device).to(item_topics.device)
    # min(): float rounding of u * n could reach n when u is just below 1
    pick = torch.minimum((u * count).floor().long(), (count - 1).clamp_min(0))  # [B]
    rank = real.long().cumsum(dim=1) - 1  # [B, T] rank of each real slot among real slots
    hit = real & (rank == pick.unsqueeze(1))  # [B, T] one True per row with a topic
    chosen = (item_topics.long() * hit).sum(dim=1)  # [B]
    has_topic = count > 0
    return torch.where(has_topic, chosen, -1), has_topic
