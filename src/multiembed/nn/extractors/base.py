"""What every interest extractor returns and the protocol it follows.

An extractor turns the summarised engagement sequence ``e [B, L, D]`` into ``K``
interest conditions ``[B, K, D]``, the implicit conditions c_j of Section 3.2
that the user tower crosses with the user's features. Which extractor a model
uses is an injected part, never a mode string.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from torch import Tensor

from multiembed.nn.functional import Affinity, Routing


class Interests(NamedTuple):
    """The interest conditions of a batch of sequences.

    Attributes:
        conditions: ``[B, K, D]`` condition vectors c_j; zero at unused slots.
        slot_mask: ``[B, K]`` bool, False for an unused slot (a sequence with fewer real
            items than ``K``, or fewer non-empty subsequences). Every row has at least one
            True: a sequence with no real item keeps slot 0, so the user still gets an
            embedding from the rest of their features.
        importance: ``[B, K]`` float, non-negative, zero at unused slots: how much of the
            sequence each condition stands for. Routing extractors give the routed mass
            sum_i b_ij (Section 3.5, where it splits the retrieval budget); attention
            extractors the number of items each slot claims; subsequences their size; the
            single extractor 1. A row with no real item may be all zero.
    """

    conditions: Tensor
    slot_mask: Tensor
    importance: Tensor


class InterestExtractor(Protocol):
    """An `nn.Module` mapping a summarised sequence to `Interests` with ``k`` slots.

    Call: ``extractor(e, mask, valid, *, item_ids=None, padding_zeroed=False) -> Interests``
    with

    - ``e [B, L, D]``: item summaries (Eq. 4), ``D == extractor.dim``; values at padding
      are ignored.
    - ``mask [B, L]`` bool: True for a real item, False for padding.
    - ``valid [B, L]`` bool: True for a valid item (features present and a positive
      action, Eq. 6); only meaningful where ``mask`` is True.
    - ``item_ids [B, L]`` int64, ``-1`` at padding: only extractors that read fixed
      per-item metadata need it (`SubsequenceExtractor` reads each item's topic); the
      others ignore it.
    - ``padding_zeroed``: the caller has already made ``e`` exactly zero at padding
      (`encode_items` with ``zero_padding``), so the extractor need not zero it again;
      the result is the same either way.

    Sequences run oldest to newest. Eval-mode calls are deterministic and treat each
    row independently of the rest of the batch; padding, wherever it sits, changes
    nothing.
    """

    k: int
    dim: int

    def __call__(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor | None = None,
        padding_zeroed: bool = False,
    ) -> Interests: ...


class RoutingFn(Protocol):
    """A routing function: `single_assignment_routing` (DCM) or `capsule_routing` (ablation).

    ``(e [B, L, D], mask [B, L], init_centroids [B, K, D], *, iterations, slot_mask [B, K],
    affinity, padding_zeroed) -> Routing``.
    """

    def __call__(
        self,
        e: Tensor,
        mask: Tensor,
        init_centroids: Tensor,
        *,
        iterations: int,
        slot_mask: Tensor | None = None,
        affinity: Affinity = "dot",
        padding_zeroed: bool = False,
    ) -> Routing: ...
