"""One request -> candidates with provenance, in raw ids: the whole service in a function.

`retrieve(bundle, request)`:

1. the user's history and followed topics: looked up for a known raw user id,
   or taken from the request body (raw item ids, oldest first; raw topic ids);
   unknown raw ids are skipped and counted;
2. the user tower embeds the history into ``K_im`` embeddings with importance
   (no usable history: no implicit lists);
3. ``K_ex`` followed topics are sampled (reproducibly per user) and embedded:
   by the conditional model when the bundle has one; otherwise by a stand-in
   that keeps the explicit lists meaningful, the user's importance-weighted mean
   implicit embedding (their taste, searched inside the topic) or, with no
   history, the topic's centroid;
4. `multiembed.retrieve.plan_request` searches, filters and merges;
5. ids are mapped back to raw ids. Non-finite query rows are dropped before the
   search, so no score is NaN; the plan never emits a ``-1`` id (checked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import torch

from multiembed.retrieve import (
    EXPLICIT,
    IMPLICIT,
    ExplicitQueries,
    ImplicitQueries,
    PlanSettings,
    Retrieval,
    Source,
    plan_request,
    sample_topics,
)
from multiembed.serve._bundle import ServingBundle
from multiembed.serve.errors import ServeInputError

RawId = int | str


@dataclass(frozen=True)
class RetrieveRequest:
    """A retrieval request: a known `user_id`, or a `history` with `followed_topics`.

    Attributes:
        user_id: raw user id of the data directory; exclusive with `history` and
            `followed_topics`.
        history: raw item ids, oldest first (only the last ``L`` are used).
        followed_topics: raw topic ids the user follows.
        budget: candidates to return (None: `DEFAULT_BUDGET`).
        seed: topic-sampling seed (rotate it per day or session to vary topics).
    """

    user_id: RawId | None = None
    history: tuple[RawId, ...] = ()
    followed_topics: tuple[RawId, ...] = ()
    budget: int | None = None
    seed: int = 0


DEFAULT_BUDGET = 1000


class SourceLabel(NamedTuple):
    """A list's origin for display: implicit slot, explicit topic (raw id and name), popular."""

    kind: str
    slot: int | None = None
    topic: RawId | None = None
    topic_name: str | None = None

    def __str__(self) -> str:
        if self.kind == IMPLICIT:
            return f"implicit slot {self.slot}"
        if self.kind == EXPLICIT:
            return f"explicit {self.topic_name}"
        return self.kind

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self._asdict().items() if v is not None}


class ServedCandidate(NamedTuple):
    """One candidate in raw ids: placed by `source` at `rank` with `score`; all finders."""

    item_id: RawId
    score: float
    source: SourceLabel
    rank: int
    found_by: tuple[tuple[SourceLabel, int, float], ...]
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Served:
    """The answer to one request.

    Attributes:
        retrieval: the plan's `Retrieval` (contiguous ids).
        candidates: the candidates in raw ids with provenance.
        lists: ``[L]`` the source of each list, with its budget, hits and filtered hits.
        model_version: the bundle that answered.
        user_id: the raw user id, or None for a body history.
        unknown_items: raw item ids of the request not in the vocabulary.
        unknown_topics: raw topic ids of the request not in the vocabulary.
    """

    retrieval: Retrieval
    candidates: list[ServedCandidate]
    lists: list[tuple[SourceLabel, int, int, int]]
    model_version: str
    user_id: RawId | None
    unknown_items: int = 0
    unknown_topics: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the HTTP response body)."""
        return {
            "model_version": self.model_version,
            "user_id": self.user_id,
            "candidates": [
                {
                    "item_id": c.item_id,
                    "score": c.score,
                    "rank": c.rank,
                    "source": c.source.as_json(),
                    "found_by": [
                        {"source": s.as_json(), "rank": r, "score": v} for s, r, v in c.found_by
                    ],
                    "topics": list(c.topics),
                }
                for c in self.candidates
            ],
            "lists": [
                {"source": s.as_json(), "budget": b, "found": f, "filtered": x}
                for s, b, f, x in self.lists
            ],
            "unknown_items": self.unknown_items,
            "unknown_topics": self.unknown_topics,
            "stages_ms": self.stages_ms,
        }


def _encode(vocab: Any, values: tuple[RawId, ...], name: str) -> np.ndarray:
    """Contiguous ids of raw `values` (``-1`` for unknown ones)."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    if pa.types.is_integer(vocab.raw.type):
        try:
            ints = [int(v) for v in values]
        except (TypeError, ValueError) as err:
            raise ServeInputError(name, f"{list(values)[:5]!r}: must be integer ids") from err
        arr = pa.array(ints, pa.int64())
    else:
        arr = pa.array([str(v) for v in values], pa.string())
    return np.asarray(vocab.encode(arr), dtype=np.int64)


def _raw(vocab: Any, ids: np.ndarray) -> list[RawId]:
    return list(vocab.decode(ids).to_pylist()) if ids.size else []


def _user_inputs(
    bundle: ServingBundle, request: RetrieveRequest
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """``history [L]``, ``valid [L]``, ``followed [T]`` (contiguous), user key, unknowns."""
    seq_len = bundle.seq_len
    if request.user_id is not None:
        if request.history or request.followed_topics:
            raise ServeInputError(
                "user_id", f"{request.user_id!r}: give a user_id or a history, not both"
            )
        uid = int(_encode(bundle.vocab.users, (request.user_id,), "user_id")[0])
        if bundle.histories is None:
            raise ServeInputError(
                "user_id", f"{request.user_id!r}: this service has no user data", status=404
            )
        if uid < 0 or uid >= bundle.histories.n_users:
            raise ServeInputError("user_id", f"{request.user_id!r}: unknown user", status=404)
        h = bundle.histories
        followed = h.followed[uid]
        return h.history[uid], h.history_valid[uid], followed[followed >= 0], uid, 0, 0
    items = _encode(bundle.vocab.items, request.history, "history")
    topics = _encode(bundle.vocab.topics, request.followed_topics, "followed_topics")
    known = items[items >= 0][-seq_len:]
    history = np.full(seq_len, -1, dtype=np.int64)
    valid = np.zeros(seq_len, dtype=bool)
    if known.size:
        history[seq_len - known.size :] = known
        valid[seq_len - known.size :] = bundle.item_valid[known]
    return (
        history,
        valid,
        np.unique(topics[topics >= 0]),
        0,
        int((items < 0).sum()),
        int((topics < 0).sum()),
    )


def _implicit(
    bundle: ServingBundle, history: np.ndarray, valid: np.ndarray, followed: np.ndarray
) -> ImplicitQueries | None:
    if not valid.any():
        return None
    width = bundle.max_topics
    slots = np.full((1, width), -1, dtype=np.int64)
    slots[0, : min(width, followed.size)] = followed[:width]
    with torch.no_grad():
        out = bundle.model.embed_users(
            torch.as_tensor(history[None], dtype=torch.int64),
            torch.as_tensor(valid[None], dtype=torch.bool),
            followed=torch.as_tensor(slots) if _uses_followed(bundle.model) else None,
        )
    emb = out.embeddings[0].float().cpu().numpy()  # [K, D]
    importance = out.importance[0].float().cpu().numpy().astype(np.float64)
    mask = out.slot_mask[0].cpu().numpy().astype(bool)
    finite = np.isfinite(emb).all(axis=1) & np.isfinite(importance)
    mask &= finite  # a non-finite row is never searched
    emb = np.where(finite[:, None], emb, 0.0).astype(np.float32)
    importance = np.where(finite, importance, 0.0)
    return ImplicitQueries(emb, importance, mask) if mask.any() else None


def _uses_followed(model: Any) -> bool:
    """Whether the user tower takes followed topics (built with ``n_followed_topics > 0``)."""
    return getattr(getattr(model, "user_tower", None), "followed_table", None) is not None


def _explicit(
    bundle: ServingBundle,
    topics: np.ndarray,
    history: np.ndarray,
    valid: np.ndarray,
    implicit: ImplicitQueries | None,
) -> ExplicitQueries | None:
    if topics.size == 0:
        return None
    if bundle.explicit is not None:
        with torch.no_grad():
            emb = (
                bundle.explicit.embed_conditioned(
                    torch.as_tensor(np.repeat(history[None], topics.size, 0)),
                    torch.as_tensor(np.repeat(valid[None], topics.size, 0)),
                    torch.as_tensor(topics),
                )
                .float()
                .cpu()
                .numpy()
            )
    elif implicit is not None:
        w = implicit.importance * implicit.slot_mask
        mean = (w[:, None] * implicit.embeddings).sum(0) / max(float(w.sum()), 1e-12)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        emb = np.repeat(mean[None].astype(np.float32), topics.size, 0)
    else:
        emb = bundle.topic_centroids[topics]
    keep = np.isfinite(emb).all(axis=1) & (np.abs(emb).sum(axis=1) > 0)
    if not keep.any():
        return None
    return ExplicitQueries(topics[keep], np.ascontiguousarray(emb[keep], dtype=np.float32))


def _label(bundle: ServingBundle, source: Source) -> SourceLabel:
    if source.kind == IMPLICIT:
        return SourceLabel(IMPLICIT, slot=source.key)
    if source.kind == EXPLICIT:
        return SourceLabel(
            EXPLICIT,
            topic=_raw(bundle.vocab.topics, np.array([source.key]))[0],
            topic_name=bundle.vocab.topic_names[source.key],
        )
    return SourceLabel(source.kind)


def retrieve(
    bundle: ServingBundle, request: RetrieveRequest, *, settings: PlanSettings | None = None
) -> Served:
    """Answer one request on `bundle` (see the module docstring).

    Args:
        bundle: the `ServingBundle` the request runs on, start to end.
        request: `RetrieveRequest`.
        settings: plan settings; default: ``PlanSettings(total=budget, k_ex=bundle.k_ex)``.

    Raises:
        ServeInputError: an unknown user (status 404), both a user id and a history,
            non-integer ids for an integer vocabulary, or a budget below 1.
    """
    budget = DEFAULT_BUDGET if request.budget is None else request.budget
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ServeInputError("budget", f"{budget!r}: must be an int >= 1")
    if settings is None:
        settings = PlanSettings(total=budget, k_ex=bundle.k_ex)
    history, valid, followed, key, unknown_items, unknown_topics = _user_inputs(bundle, request)
    implicit = _implicit(bundle, history, valid, followed)
    topics = sample_topics(followed, settings.k_ex, seed=request.seed, user=key)
    explicit = _explicit(bundle, topics, history, valid, implicit)
    result = plan_request(
        index=bundle.index,
        popular=bundle.popular,
        settings=settings,
        implicit=implicit,
        explicit=explicit,
        topic_index=bundle.topic_index,
    )
    c = result.candidates
    if c.ids.size and (int(c.ids.min()) < 0 or not np.isfinite(c.scores).all()):
        raise RuntimeError("internal: the retrieval plan produced a -1 id or a non-finite score")
    labels = [_label(bundle, s) for s in result.sources]
    raw_items = _raw(bundle.vocab.items, c.ids)
    names = bundle.vocab.topic_names
    candidates = [
        ServedCandidate(
            item_id=raw_items[n],
            score=float(c.scores[n]),
            source=labels[int(c.source[n])],
            rank=int(c.rank[n]),
            found_by=tuple((labels[o.source], o.rank, o.score) for o in c.found_by(n)),
            topics=tuple(names[t] for t in _topics_of(bundle, int(c.ids[n]))),
        )
        for n in range(len(c))
    ]
    lists = [
        (labels[i], int(result.budgets[i]), int(result.found[i]), int(result.filtered[i]))
        for i in range(len(labels))
    ]
    return Served(
        retrieval=result,
        candidates=candidates,
        lists=lists,
        model_version=bundle.model_version,
        user_id=request.user_id,
        unknown_items=unknown_items,
        unknown_topics=unknown_topics,
        stages_ms={k: round(v, 3) for k, v in result.stages_ms.items()},
    )


def _topics_of(bundle: ServingBundle, item: int) -> list[int]:
    row = bundle.topics_of[item]
    return [int(t) for t in row if t >= 0]
