"""Item features held as tensors, looked up by item id with ``-1`` padding mapped safely.

`ItemFeatures` is the whole item table (``N`` items); `ItemFeatures.lookup` gathers
the rows of any id tensor ``[*S]`` into an `ItemInputs`, the keyword inputs of an
`ItemEncoder` (`ItemSummariser`, `ItemTower`). `encode_items` makes that call.

A padded id (``-1``) looks up a row that reads as "nothing here" to the summariser:
vector marked missing, every code ``-1``, no topics.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from multiembed.nn.functional._checks import check_ids
from multiembed.nn.item_tower import ItemEncoder

PAD = -1
"""Item id of a padded slot."""


class ItemInputs(NamedTuple):
    """Features of a tensor of item ids, ready for an `ItemEncoder`.

    Attributes:
        item_ids: ``[*S]`` int64 ids, ``-1`` for padding.
        vector: ``[*S, V]`` pretrained vectors, or None (no vector feature).
        vector_present: ``[*S]`` bool, False where the vector is missing or the slot is
            padding; None with ``vector``.
        codes: ``[*S, C]`` categorical codes, ``-1`` missing; None when there are none.
        topics: ``[*S, T]`` topic ids padded with ``-1``; None when there are none.
    """

    item_ids: Tensor
    vector: Tensor | None = None
    vector_present: Tensor | None = None
    codes: Tensor | None = None
    topics: Tensor | None = None


class ItemFeatures(NamedTuple):
    """The feature table of all ``N`` items; each part optional.

    Attributes:
        n_items: number of items ``N``; ids are ``0 .. N - 1``.
        vector: ``[N, V]`` float pretrained vectors (values where absent are ignored,
            NaN allowed), or None.
        vector_present: ``[N]`` bool, False where an item has no vector; None means all
            present (only allowed with a vector).
        codes: ``[N, C]`` int64 categorical codes, ``-1`` for missing, or None.
        topics: ``[N, T]`` int64 topic ids padded with ``-1``, or None.

    Example:
        >>> features = ItemFeatures(
        ...     n_items=3,
        ...     vector=torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]),
        ...     vector_present=torch.tensor([True, False, True]),
        ...     codes=torch.tensor([[2], [0], [1]]),
        ... )
        >>> inputs = features.lookup(torch.tensor([[2, -1]]))   # [B=1, L=2], -1 pads
        >>> inputs.vector_present, inputs.codes
        (tensor([[ True, False]]), tensor([[[ 1],
                 [-1]]]))
    """

    n_items: int
    vector: Tensor | None = None
    vector_present: Tensor | None = None
    codes: Tensor | None = None
    topics: Tensor | None = None

    def check(self) -> None:
        """Raise `ValueError` listing every shape, dtype or range problem of the table."""
        problems = _problems(self)
        if problems:
            raise ValueError("invalid ItemFeatures: " + "; ".join(problems))

    @property
    def vector_dim(self) -> int | None:
        """Width ``V`` of the pretrained vector, None without one."""
        return None if self.vector is None else int(self.vector.shape[1])

    def present_mask(self) -> Tensor:
        """``[N]`` bool, False where an item has no vector: ``vector_present``, or all True
        when it is None (every vector present, or no vector feature)."""
        if self.vector_present is None:
            return torch.ones(self.n_items, dtype=torch.bool)
        return self.vector_present

    def categorical_cardinalities(self) -> tuple[int, ...]:
        """Per categorical column, the largest code plus one (at least 1)."""
        if self.codes is None:
            return ()
        if self.codes.shape[0] == 0:
            return (1,) * int(self.codes.shape[1])
        return tuple(max(1, int(c) + 1) for c in self.codes.max(dim=0).values.tolist())

    def n_topics(self) -> int:
        """The largest topic id plus one; 0 without topics."""
        if self.topics is None or self.topics.numel() == 0:
            return 0
        return max(0, int(self.topics.max()) + 1)

    def lookup(self, item_ids: Tensor) -> ItemInputs:
        """Gather the features of ``item_ids [*S]`` (``-1`` = padding) into `ItemInputs`.

        Raises:
            ValueError: when ids are not integers or lie outside ``[-1, N - 1]``.
        """
        if item_ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"ItemFeatures.lookup: expected item_ids of dtype int32 or int64, "
                f"got {item_ids.dtype}"
            )
        check_ids("ItemFeatures.lookup", "item ids", item_ids, self.n_items, got="values in ")
        item_ids = item_ids.long()
        real = item_ids >= 0  # [*S]
        rows = item_ids.clamp_min(0)  # padding reads row 0, then gets masked
        vector = present = codes = topics = None
        if self.vector is not None:
            vector = self.vector[rows]  # [*S, V]
            present = real if self.vector_present is None else self.vector_present[rows] & real
        if self.codes is not None:
            codes = self.codes[rows].masked_fill(~real.unsqueeze(-1), PAD)  # [*S, C]
        if self.topics is not None:
            topics = self.topics[rows].masked_fill(~real.unsqueeze(-1), PAD)  # [*S, T]
        return ItemInputs(item_ids, vector, present, codes, topics)


class ItemLookup(NamedTuple):
    """Item ids ``[*S]`` and the table to read their features from, not gathered yet.

    `encode_items` gathers the features of each distinct id once. Gathering them for
    every position first (`ItemFeatures.lookup`) copies a ``[*S, T]`` topic tensor:
    on Last.fm, whose items carry up to 329 tags, a batch of 512 histories of 50
    items is 67 MB per lookup, a quarter of a training step.

    Attributes:
        item_ids: ``[*S]`` int ids, ``-1`` for padding.
        table: the `ItemFeatures` of every item.
    """

    item_ids: Tensor
    table: ItemFeatures


def encode_items(
    encoder: ItemEncoder, inputs: ItemInputs | ItemLookup, *, zero_padding: bool = False
) -> Tensor:
    """Call an `ItemEncoder` on items' features: ``[*S]`` ids -> ``[*S, out_dim]``.

    An item's summary depends on the item alone, so each distinct id (padding
    included) is encoded once and the results are gathered back: a batch of
    histories repeats popular items many times, and an item with hundreds of topics
    would otherwise be pooled again at every occurrence. With an `ItemLookup` only
    the distinct ids' features are gathered; the result is the same.

    With ``zero_padding``, padding positions (id ``-1``) are exactly zero and pass
    no gradient back, so a reader of the sequence need not mask them again: the
    zeroing costs one row of the distinct summaries, not ``[*S, out_dim]``.

    Example:
        >>> features = ItemFeatures(n_items=3, topics=torch.tensor([[0, 1], [1, -1], [2, 2]]))
        >>> calls = []
        >>> def encoder(ids, *, vector, vector_present, codes, topics):
        ...     calls.append(ids.numel())
        ...     return topics.float().sum(-1, keepdim=True)      # [U, 1]
        >>> ids = torch.tensor([[2, 2, 0], [0, -1, 2]])                # [B=2, L=3]
        >>> encode_items(encoder, features.lookup(ids)).squeeze(-1)
        tensor([[ 4.,  4.,  1.],
                [ 1., -2.,  4.]])
        >>> encode_items(encoder, ItemLookup(ids, features)).squeeze(-1)
        tensor([[ 4.,  4.,  1.],
                [ 1., -2.,  4.]])
        >>> calls                                                  # 3 distinct ids of 6
        [3, 3]
        >>> encode_items(encoder, ItemLookup(ids, features), zero_padding=True)[1].squeeze(-1)
        tensor([1., 0., 4.])
    """
    ids = inputs.item_ids
    distinct, inverse = torch.unique(ids.reshape(-1), return_inverse=True)  # [U], [S']
    if distinct.numel() == ids.numel():  # nothing repeats: encode as is
        parts = inputs.table.lookup(ids) if isinstance(inputs, ItemLookup) else inputs
        out = _encode(encoder, parts)  # [*S, out_dim]
        return _zero_padding(out, ids) if zero_padding else out
    if isinstance(inputs, ItemLookup):
        parts = inputs.table.lookup(distinct)
    else:
        positions = torch.arange(inverse.numel(), device=ids.device)
        first = torch.full_like(distinct, inverse.numel()).scatter_reduce(
            0, inverse, positions, reduce="amin"
        )  # [U] the first occurrence of each distinct id

        def rows(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.reshape(-1, *t.shape[ids.dim() :])[first]

        parts = ItemInputs(ids.reshape(-1)[first], *(rows(t) for t in inputs[1:]))
    out = _encode(encoder, parts)  # [U, out_dim]
    if zero_padding:
        out = _zero_padding(out, distinct)
    # index_select, not out[inverse]: the same rows; its backward adds rows in place
    # where indexing's sorts them first (3x the time for a batch of histories on a CPU)
    return out.index_select(0, inverse).reshape(*ids.shape, out.shape[-1])  # [*S, out_dim]


def _zero_padding(out: Tensor, ids: Tensor) -> Tensor:
    """``out [*S, D]`` with the rows of padding ids (``ids [*S] < 0``) zero."""
    return torch.where((ids < 0).unsqueeze(-1), 0.0, out)


def _encode(encoder: ItemEncoder, parts: ItemInputs) -> Tensor:
    return encoder(
        parts.item_ids,
        vector=parts.vector,
        vector_present=parts.vector_present,
        codes=parts.codes,
        topics=parts.topics,
    )


def _problems(features: ItemFeatures) -> list[str]:
    n = features.n_items
    problems: list[str] = []
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return [f"n_items = {n!r}: must be an int >= 1"]
    if features.vector is not None:
        v = features.vector
        if v.dim() != 2 or v.shape[0] != n or not v.is_floating_point():
            problems.append(
                f"vector: expected a floating tensor of shape [{n}, V], "
                f"got {v.dtype} of shape {list(v.shape)}"
            )
    if features.vector_present is not None:
        p = features.vector_present
        if features.vector is None:
            problems.append("vector_present: expected None without a vector, got a tensor")
        if p.dtype != torch.bool or tuple(p.shape) != (n,):
            problems.append(
                f"vector_present: expected bool of shape [{n}], got {p.dtype} of shape "
                f"{list(p.shape)}"
            )
    for name, t in (("codes", features.codes), ("topics", features.topics)):
        if t is None:
            continue
        if t.dim() != 2 or t.shape[0] != n or t.dtype != torch.int64:
            problems.append(
                f"{name}: expected int64 of shape [{n}, *], got {t.dtype} of shape {list(t.shape)}"
            )
        elif t.numel() and int(t.min()) < PAD:
            problems.append(f"{name}: expected values >= -1, got minimum {int(t.min())}")
    return problems
