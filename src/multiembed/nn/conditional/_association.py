"""Explicit condition association (Section 3.3.2): which topic conditions a training example.

Two strategies behind the `ConditionAssociation` protocol, both small `nn.Module` s:

- `SourceInterest`: the topic logged with the engagement (``source_topic``), i.e.
  association at logging time, the paper's choice;
- `ItemInterest`: a topic sampled uniformly from the engaged item's topics, i.e.
  association at training time, the Lin et al. baseline.

Each returns `Conditions`: a topic per example and a keep-mask. Examples that get no
condition (nothing logged; an item without topics) are not trained on: the model
drops them from the batch and counts them.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import Tensor, nn

from multiembed.nn.conditional._functional import sample_item_topic
from multiembed.nn.functional._checks import check_generator, check_shapes


class Conditions(NamedTuple):
    """The condition of each of ``B`` examples.

    Attributes:
        topic: ``[B]`` int64 condition topic, ``-1`` where the example has none.
        keep: ``[B]`` bool, True where the example has a condition and is trained on;
            equal to ``topic >= 0``.
    """

    topic: Tensor
    keep: Tensor


class ConditionAssociation(Protocol):
    """Call: ``(source_topic [B], target_topics [B, T] | None) -> Conditions``.

    ``source_topic`` is the topic logged with each engagement (``-1``: none);
    ``target_topics`` are the engaged (target) items' topics padded with ``-1``, or
    None when the item table has no topics. Both are keyword arguments.
    """

    def __call__(self, *, source_topic: Tensor, target_topics: Tensor | None) -> Conditions: ...

    def keeps(self, *, source_topic: Tensor, target_topics: Tensor | None) -> Tensor:
        """``[B]`` bool: the keep-mask a call would give, drawing nothing (logQ counts
        these rows: the loss's in-batch negatives)."""
        ...


class SourceInterest(nn.Module):
    """The condition is the topic logged with the engagement (logging-time association).

    Examples logged without a topic (``source_topic == -1``) are not kept. The
    target's topics are ignored: the point of logging-time association is that the
    condition is what the serving surface used (the followed topic that retrieved
    the item), not a guess from the item.

    Example:
        >>> c = SourceInterest()(source_topic=torch.tensor([4, -1, 0]), target_topics=None)
        >>> c.topic.tolist(), c.keep.tolist()
        ([4, -1, 0], [True, False, True])
    """

    def forward(self, *, source_topic: Tensor, target_topics: Tensor | None) -> Conditions:
        """Take ``source_topic [B]``; keep where it is ``>= 0``."""
        _check_source(type(self).__name__, source_topic)
        topic = source_topic.long()
        return Conditions(topic, topic >= 0)

    def keeps(self, *, source_topic: Tensor, target_topics: Tensor | None) -> Tensor:
        """``[B]`` bool: rows logged with a topic."""
        return self(source_topic=source_topic, target_topics=target_topics).keep


class ItemInterest(nn.Module):
    """The condition is a topic sampled uniformly from the target item's topics (Lin et al.).

    Association at training time: the sample need not be the topic the user engaged
    for, which is the train/serve gap Section 3.3.2 describes. Items without topics
    give no condition and are not kept. ``source_topic`` is ignored.

    Args:
        generator: the only source of randomness (see `sample_item_topic`); the same
            generator state gives the same conditions. A trainer keeps its state in
            checkpoints. Evaluation conditions on logged or followed topics and never
            calls the association.
        logged_only: keep only rows that also have a logged condition, so that item
            and source interest train on the same engagements and differ only in the
            association (the comparison of Table 2).

    Example:
        >>> item = ItemInterest(generator=torch.Generator().manual_seed(0))
        >>> topics = torch.tensor([[2, 6], [-1, -1], [5, -1]])           # [B=3, T=2]
        >>> c = item(source_topic=torch.tensor([1, 1, -1]), target_topics=topics)
        >>> c.topic[0].item() in (2, 6), c.topic[1:].tolist(), c.keep.tolist()
        (True, [-1, 5], [True, False, True])
    """

    def __init__(self, *, generator: torch.Generator, logged_only: bool = False) -> None:
        super().__init__()
        check_generator("ItemInterest", generator)
        self.generator = generator
        self.logged_only = logged_only

    def forward(self, *, source_topic: Tensor, target_topics: Tensor | None) -> Conditions:
        """Sample one of ``target_topics [B, T]`` per row; keep rows whose item has a topic."""
        topics = self._checked(source_topic, target_topics)
        topic, has_topic = sample_item_topic(topics, self.generator)
        keep = has_topic & (source_topic >= 0) if self.logged_only else has_topic
        return Conditions(torch.where(keep, topic, -1), keep)

    def keeps(self, *, source_topic: Tensor, target_topics: Tensor | None) -> Tensor:
        """``[B]`` bool: rows whose item has a topic (and a logged one, `logged_only`),
        without drawing from the generator."""
        has_topic = (self._checked(source_topic, target_topics) >= 0).any(dim=1)
        return has_topic & (source_topic >= 0) if self.logged_only else has_topic

    def _checked(self, source_topic: Tensor, target_topics: Tensor | None) -> Tensor:
        """``target_topics [B, T]``, once both arguments are checked."""
        where = type(self).__name__
        _check_source(where, source_topic)
        if target_topics is None:
            raise ValueError(
                f"{where}: expected target_topics of shape [{source_topic.shape[0]}, T] "
                "(the item table needs topics), got None"
            )
        check_shapes(where, source_topic=(source_topic, "B"), target_topics=(target_topics, "B T"))
        return target_topics


def _check_source(where: str, source_topic: Tensor) -> None:
    check_shapes(where, source_topic=(source_topic, "B:int"))
    if source_topic.numel() and int(source_topic.min()) < -1:
        raise ValueError(
            f"{where}: expected source_topic >= -1 (-1: none logged), "
            f"got minimum {int(source_topic.min())}"
        )
