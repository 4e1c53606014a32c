"""Item feature summariser: the GELU MLP of Eq. 4 over an item's concatenated features.

    e_i = W_2^T GELU(W_1^T concat(f_i1, ..., f_iN))                      (Eq. 4)

The features f_in of one item are, in this order, each optional:

- a learned item-id embedding               [id_dim]
- a dense pretrained vector                 [V]
- one learned embedding per categorical     [F * id_dim]
- the mean of the item's topic embeddings   [id_dim]

Every input shares the leading shape `S` of `item_ids`, so the same module
summarises a batch of sequences (`S = [B, L]`) or a flat list of items (`S = [N]`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiembed.nn.functional._checks import check_ids, raise_problems

EXPORT_DENSE_TOPICS = 32
"""While a tower is traced for ONNX, items with at most this many topic slots pool their
topics as one dense gather: the ragged bag of eager mode becomes a Loop over the items
in the graph, which cost onnxruntime about 0.2 ms of a 0.5 ms user tower at a batch of
one (README, "Benchmarks"). Wider slots keep the bag, whose memory does not grow with
the widest item's topic count."""


class SummaryInputs(NamedTuple):
    """Which of an item's features `ItemSummariser` reads, with their vocabularies.

    Attributes:
        use_item_id: whether the id embedding is a feature. Without it the summary
            depends on content only, so an item never seen in training (cold start) is
            summarised as well as a familiar one.
        n_topics: size of the topic vocabulary; 0 disables the topic feature.
        vector_dim: width ``V`` of a dense pretrained vector; None disables it.
        categorical_cardinalities: one cardinality per categorical feature (``F`` of
            them); code ``c`` of feature ``f`` lies in ``0 .. cardinalities[f] - 1`` and
            ``-1`` means missing.
    """

    use_item_id: bool = True
    n_topics: int = 0
    vector_dim: int | None = None
    categorical_cardinalities: tuple[int, ...] = ()


class ItemSummariser(nn.Module):
    """Summarise each item's features into one vector with a 2-layer GELU MLP (Eq. 4).

    Args:
        n_items: size of the item-id vocabulary; ids are ``0 .. n_items - 1`` and
            ``-1`` marks a padded slot (zero id embedding, never trained).
        id_dim: width of every learned embedding (item id, each categorical, topics).
        hidden_dim: width of the GELU layer (``W_1`` maps to it).
        out_dim: width ``D`` of the summary ``e_i`` (``W_2`` maps to it).
        inputs: which features it reads (`SummaryInputs`; by default the item id only).

    Missing inputs never become zeros. A missing pretrained vector is replaced by
    the learned ``missing_vector``, a missing code by its table's dedicated last
    row, and an item with no topics by the topic table's "no topics" row. A
    zero vector is a plausible real input; the learned stand-ins make "missing"
    a distinct, learnable input, and they also make such items land apart from
    real ones, which is why the clustering initialisation masks invalid items
    (Eq. 6) rather than trusting their embeddings.

    ``W_1`` and ``W_2`` carry biases (zero at initialisation), which Eq. 4 leaves
    implicit.

    Padded slots (``item_ids == -1``) still produce a finite summary from their
    other inputs; callers mask them downstream.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> summariser = ItemSummariser(
        ...     n_items=10, id_dim=8, hidden_dim=16, out_dim=6,
        ...     inputs=SummaryInputs(n_topics=5, vector_dim=3, categorical_cardinalities=(4, 2)),
        ... )
        >>> item_ids = torch.tensor([[1, 2, -1], [3, 4, 5]])   # [B=2, L=3], -1 pads
        >>> e = summariser(
        ...     item_ids,
        ...     vector=torch.randn(2, 3, 3),                     # [B, L, V]
        ...     vector_present=torch.tensor([[True, False, True], [True, True, True]]),
        ...     codes=torch.tensor([[[0, 1], [3, -1], [0, 0]], [[1, 1], [2, 0], [-1, -1]]]),
        ...     topics=torch.tensor([[[0, 4], [1, -1], [-1, -1]], [[2, 3], [0, -1], [4, -1]]]),
        ... )
        >>> e.shape                                              # [B, L, D]
        torch.Size([2, 3, 6])
    """

    def __init__(
        self,
        *,
        n_items: int,
        id_dim: int,
        hidden_dim: int,
        out_dim: int,
        inputs: SummaryInputs = SummaryInputs(),
    ) -> None:
        super().__init__()
        use_item_id, n_topics, vector_dim, categorical_cardinalities = inputs
        sizes = {"n_items": n_items, "id_dim": id_dim, "hidden_dim": hidden_dim, "out_dim": out_dim}
        problems = [f"{name} = {value}: must be >= 1" for name, value in sizes.items() if value < 1]
        if n_topics < 0:
            problems.append(f"n_topics = {n_topics}: must be >= 0 (0 disables topics)")
        if vector_dim is not None and vector_dim < 1:
            problems.append(f"vector_dim = {vector_dim}: must be >= 1 or None")
        if any(c < 1 for c in categorical_cardinalities):
            problems.append(
                f"categorical_cardinalities = {categorical_cardinalities}: each must be >= 1"
            )
        if not (use_item_id or n_topics or vector_dim is not None or categorical_cardinalities):
            problems.append("no features: enable the item id, topics, a vector or a categorical")
        raise_problems("ItemSummariser", problems)

        self.n_items = n_items
        self.n_topics = n_topics
        self.vector_dim = vector_dim
        self.categorical_cardinalities = tuple(categorical_cardinalities)
        self.use_item_id = use_item_id
        self.out_dim = out_dim

        in_dim = 0
        if use_item_id:
            # row n_items is the padding row: zero and frozen by padding_idx
            self.item_table = nn.Embedding(n_items + 1, id_dim, padding_idx=n_items)
            in_dim += id_dim
        if vector_dim is not None:
            self.missing_vector = nn.Parameter(torch.empty(vector_dim))
            in_dim += vector_dim
        # table f has cardinalities[f] + 1 rows; its last row stands for a missing code
        self.code_tables = nn.ModuleList(
            nn.Embedding(c + 1, id_dim) for c in self.categorical_cardinalities
        )
        in_dim += id_dim * len(self.categorical_cardinalities)
        if n_topics > 0:
            # row n_topics stands for "this item has no topics"
            self.topic_table = nn.Embedding(n_topics + 1, id_dim)
            in_dim += id_dim
        self.in_dim = in_dim
        self.w1 = nn.Linear(in_dim, hidden_dim)
        self.w2 = nn.Linear(hidden_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings ~ trunc-normal(0.02); missing vector ~ trunc-normal(1/sqrt(V)); Xavier MLP."""
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.trunc_normal_(module.weight, std=0.02)
        if self.use_item_id:
            with torch.no_grad():
                self.item_table.weight[self.n_items].zero_()  # the padding row
        if self.vector_dim is not None:
            # unit-norm scale, like a normalised pretrained vector, but learned
            nn.init.trunc_normal_(self.missing_vector, std=1.0 / math.sqrt(self.vector_dim))
        for linear in (self.w1, self.w2):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(
        self,
        item_ids: Tensor,
        *,
        vector: Tensor | None = None,
        vector_present: Tensor | None = None,
        codes: Tensor | None = None,
        topics: Tensor | None = None,
    ) -> Tensor:
        """Summarise items.

        Args:
            item_ids: ``[*S]`` integer ids, ``-1`` for padding. Required even
                when ``use_item_id`` is False: it fixes the leading shape ``S``.
            vector: ``[*S, V]`` pretrained vectors; required iff ``vector_dim`` is set.
            vector_present: ``[*S]`` bool, False where the vector is missing (its
                values there are ignored, NaN allowed). None means all present.
            codes: ``[*S, F]`` categorical codes, ``-1`` for missing; required iff
                ``categorical_cardinalities`` is non-empty.
            topics: ``[*S, T]`` topic ids padded with ``-1`` (any ``T >= 0``);
                required iff ``n_topics > 0``.

        Returns:
            ``[*S, D]`` item summaries ``e_i``.
        """
        self._check_inputs(item_ids, vector, vector_present, codes, topics)
        features = []  # each [*S, width]
        if self.use_item_id:
            rows = _rows(self.item_table, _remap_missing(item_ids, self.n_items))
            if torch.is_grad_enabled():  # the padding row (zero) stays frozen: no gradient
                rows = torch.where((item_ids < 0).unsqueeze(-1), 0.0, rows)
            features.append(rows)
        if vector is not None:
            if vector_present is not None:
                vector = torch.where(vector_present.unsqueeze(-1), vector, self.missing_vector)
            features.append(vector)
        if codes is not None:
            for f, (table, cardinality) in enumerate(
                zip(self.code_tables, self.categorical_cardinalities, strict=True)
            ):
                features.append(_rows(table, _remap_missing(codes[..., f], cardinality)))
        if topics is not None:
            features.append(self._pool_topics(topics))
        x = torch.cat(features, dim=-1)  # [*S, in_dim]
        return self.w2(F.gelu(self.w1(x)))  # [*S, D]

    def _pool_topics(self, topics: Tensor) -> Tensor:
        """Mean of the valid topic embeddings; the "no topics" row for an empty bag.

        ``[*S, T]`` -> ``[*S, id_dim]``.
        """
        valid = topics >= 0  # [*S, T]
        count = valid.sum(dim=-1, keepdim=True)  # [*S, 1]
        if torch.onnx.is_in_onnx_export() and topics.shape[-1] <= EXPORT_DENSE_TOPICS:
            rows = self.topic_table.weight[topics.clamp(min=0)]  # [*S, T, id_dim]
            total = (rows * valid.unsqueeze(-1).to(rows.dtype)).sum(dim=-2)  # the bag's sums
        else:
            # One bag per item over its own topics only (ragged: the flat topic ids and
            # where each item's start), not over T padded slots: T is the largest topic
            # count of any item (329 on Last.fm, whose items average 19), and gathering
            # [*S, T, id_dim] rows cost 20x the bag.
            sizes = count.reshape(-1)  # [S']
            starts = sizes.cumsum(0) - sizes
            total = F.embedding_bag(topics[valid], self.topic_table.weight, starts, mode="sum")
            total = total.reshape(*count.shape[:-1], total.shape[-1])  # [*S, id_dim]
        mean = total / count.clamp(min=1)
        return torch.where(count > 0, mean, self.topic_table.weight[self.n_topics])

    def _check_inputs(
        self,
        item_ids: Tensor,
        vector: Tensor | None,
        vector_present: Tensor | None,
        codes: Tensor | None,
        topics: Tensor | None,
    ) -> None:
        shape = tuple(item_ids.shape)
        _check_integer("item_ids", item_ids)
        if self.use_item_id:
            _check_range("item_ids", item_ids, self.n_items)

        _check_given("vector", vector, self.vector_dim is not None, f"vector_dim={self.vector_dim}")
        if vector is not None:
            _check_shape("vector", vector, (*shape, self.vector_dim))
        if vector_present is not None:
            if vector is None:
                raise ValueError("vector_present: expected None when vector is None, got a tensor")
            _check_shape("vector_present", vector_present, shape)
            if vector_present.dtype != torch.bool:
                raise ValueError(f"vector_present: expected bool, got {vector_present.dtype}")

        n_codes = len(self.categorical_cardinalities)
        _check_given("codes", codes, n_codes > 0, f"{n_codes} categorical features")
        if codes is not None:
            _check_shape("codes", codes, (*shape, n_codes))
            for f, cardinality in enumerate(self.categorical_cardinalities):
                _check_range(f"codes[..., {f}]", codes[..., f], cardinality)

        _check_given("topics", topics, self.n_topics > 0, f"n_topics={self.n_topics}")
        if topics is not None:
            if topics.dim() != len(shape) + 1 or tuple(topics.shape[:-1]) != shape:
                raise ValueError(
                    f"topics: expected shape [{_dims(shape)}, T], got {list(topics.shape)}"
                )
            _check_range("topics", topics, self.n_topics)


def _rows(table: nn.Module, ids: Tensor) -> Tensor:
    """``table(ids)`` by ``index_select``: the same rows and gradient, but the backward
    adds the gradient rows into the table directly, where the embedding backward
    sorts them first (about 3x the time for a batch of histories on a CPU)."""
    assert isinstance(table, nn.Embedding)
    return table.weight.index_select(0, ids.reshape(-1)).view(*ids.shape, -1)


def _remap_missing(ids: Tensor, missing_row: int) -> Tensor:
    """Send ``-1`` to the table's reserved last row ``missing_row``."""
    return torch.where(ids < 0, missing_row, ids)


def _check_shape(name: str, x: Tensor, expected: tuple[int | None, ...]) -> None:
    if tuple(x.shape) != expected:
        raise ValueError(f"{name}: expected shape [{_dims(expected)}], got {list(x.shape)}")


def _check_integer(name: str, ids: Tensor) -> None:
    if ids.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name}: expected dtype int32 or int64, got {ids.dtype}")


def _check_range(name: str, ids: Tensor, size: int) -> None:
    _check_integer(name, ids)
    check_ids(name, "ids", ids, size, got="values in ")


def _dims(shape: tuple[int | None, ...]) -> str:
    return ", ".join(str(d) for d in shape)


def _check_given(name: str, x: Tensor | None, wanted: bool, setting: str) -> None:
    """Require a tensor exactly when the ``setting`` reads the input ``name``."""
    if (x is not None) != wanted:
        raise ValueError(
            f"{name}: expected {'a tensor' if wanted else 'None'} ({setting}), got {_describe(x)}"
        )


def _describe(x: Tensor | None) -> str:
    return "None" if x is None else f"a tensor of shape {list(x.shape)}"
