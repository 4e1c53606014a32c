"""Batched inference: eval mode, no gradient, a model's user and item embeddings as NumPy.

Evaluation, validation, export and the experiments embed through these. Inference
never draws fresh randomness: models are switched to eval mode (the
DCM and capsule extractors then use fixed initial centroids, and no Gumbel noise
is drawn because associations are not called) and restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from multiembed.nn.user_tower import UserEmbeddings


@runtime_checkable
class UserItemModel(Protocol):
    """An implicit-interest model as evaluation uses it (`multiembed.nn.retrieval.RetrievalModel`).

    - ``embed_users(history [B, L], history_valid [B, L], followed=[B, T] | None)``
      returns `UserEmbeddings` (``[B, K, D]`` embeddings, slot mask, importance);
    - ``embed_items(item_ids [*S])`` returns unit-norm ``[*S, D]``.
    """

    training: bool

    def train(self, mode: bool = True) -> Any: ...

    def embed_users(
        self, history: Tensor, history_valid: Tensor, *, followed: Tensor | None = None
    ) -> UserEmbeddings: ...

    def embed_items(self, item_ids: Tensor) -> Tensor: ...


@runtime_checkable
class ConditionalModel(Protocol):
    """An explicit-interest (Conditional Retrieval) model as evaluation uses it.

    - ``embed_conditioned(history [B, L], history_valid [B, L], topics [B])`` returns
      ``[B, D]``, the user embedding conditioned on ``topics[b]`` (Section 3.3.1);
    - ``embed_items(item_ids [*S])`` returns ``[*S, D]`` in the same space.
    """

    training: bool

    def train(self, mode: bool = True) -> Any: ...

    def embed_conditioned(
        self, history: Tensor, history_valid: Tensor, topics: Tensor
    ) -> Tensor: ...

    def embed_items(self, item_ids: Tensor) -> Tensor: ...


class UserBatch(NamedTuple):
    """NumPy `UserEmbeddings` of ``R`` records: ``[R, K, D]``, ``[R, K]`` bool, ``[R, K]``."""

    embeddings: np.ndarray
    slot_mask: np.ndarray
    importance: np.ndarray


def device_of(model: object) -> torch.device:
    """The device of a module's first parameter (CPU for anything else)."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


@contextmanager
def inference(*models: UserItemModel | ConditionalModel | None) -> Iterator[None]:
    """Eval mode and `torch.inference_mode` for the block; each model's mode is restored after.

    Inference mode skips autograd's bookkeeping (version counters, view tracking), which
    is most of the cost of a small batch such as one serving request; the tensors made
    inside cannot enter a backward pass (callers turn them into arrays)."""
    present = [m for m in models if m is not None]
    modes = [m.training for m in present]
    for m in present:
        m.train(False)
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, mode in zip(present, modes, strict=True):
            m.train(mode)


def _batches(n: int, batch_size: int, step: Callable[[], None] | None = None) -> Iterator[slice]:
    """Slices of ``batch_size`` rows of ``n``; ``step()`` after each batch is done."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))
        if step is not None:
            step()


def embed_items(
    model: UserItemModel | ConditionalModel,
    item_ids: np.ndarray,
    *,
    batch_size: int,
    step: Callable[[], None] | None = None,
) -> np.ndarray:
    """``[N]`` ids -> ``[N, D]`` float32 item embeddings."""
    device = device_of(model)
    parts = []
    for s in _batches(item_ids.size, batch_size, step):
        ids = torch.as_tensor(item_ids[s], dtype=torch.int64, device=device)
        parts.append(model.embed_items(ids).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def embed_users(
    model: UserItemModel,
    history: np.ndarray,
    history_valid: np.ndarray,
    followed: np.ndarray | None,
    *,
    batch_size: int,
    step: Callable[[], None] | None = None,
) -> UserBatch:
    """``[R, L]`` histories (and ``[R, T]`` followed topics, or None) -> `UserBatch`."""
    device = device_of(model)
    emb, mask, imp = [], [], []
    for s in _batches(history.shape[0], batch_size, step):
        out = model.embed_users(
            torch.as_tensor(history[s], dtype=torch.int64, device=device),
            torch.as_tensor(history_valid[s], dtype=torch.bool, device=device),
            followed=None
            if followed is None
            else torch.as_tensor(followed[s], dtype=torch.int64, device=device),
        )
        emb.append(out.embeddings.float().cpu().numpy())
        mask.append(out.slot_mask.cpu().numpy())
        imp.append(out.importance.float().cpu().numpy())
    return UserBatch(np.concatenate(emb), np.concatenate(mask), np.concatenate(imp))


def embed_conditioned(
    model: ConditionalModel,
    history: np.ndarray,
    history_valid: np.ndarray,
    topics: np.ndarray,
    *,
    batch_size: int,
) -> np.ndarray:
    """``[M, L]`` histories with ``[M]`` condition topics -> ``[M, D]`` float32."""
    device = device_of(model)
    parts = []
    for s in _batches(topics.size, batch_size):
        out = model.embed_conditioned(
            torch.as_tensor(history[s], dtype=torch.int64, device=device),
            torch.as_tensor(history_valid[s], dtype=torch.bool, device=device),
            torch.as_tensor(topics[s], dtype=torch.int64, device=device),
        )
        parts.append(out.float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
