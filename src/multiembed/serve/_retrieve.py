"""One request -> candidates with provenance, in raw ids: the whole service in a function.

`retrieve(bundle, request)`:

1. the user's history and followed topics: looked up for a known raw user id,
   or taken from the request body (raw item ids, oldest first; raw topic ids);
   unknown raw ids are skipped and counted;
2. the user tower embeds the history into ``K_im`` embeddings with importance
   (no usable history: no implicit lists); a known user's come from the
   bundle's table, computed once when it was built (`ServingBundle.user_queries`);
3. ``K_ex`` followed topics are sampled (reproducibly per user) and embedded:
   by the conditional model when the bundle has one; otherwise by
   `multiembed.retrieve.explicit_standin`, which keeps the explicit lists
   meaningful: the user's importance-weighted mean implicit embedding (their
   taste, searched inside the topic) or, with no history, the topic's centroid;
4. `multiembed.retrieve.plan_request` searches, filters and merges, searching
   deeper the lists that deduplication left short, so that the answer holds
   ``budget`` candidates whenever the index has that many for the user;
5. item ids are mapped back to raw ids in one vectorised decode; the provenance
   stays in the plan's arrays. `Served` is columnar because per-candidate Python
   objects and nested dicts cost about 13 ms of CPU for 1000 candidates, three
   times the rest of the request. Non-finite query rows are dropped before the
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
    explicit_standin,
    finite_queries,
    implicit_queries,
    plan_request,
    sample_topics,
)
from multiembed.runs import embed_conditioned, embed_users
from multiembed.serve._bundle import ServingBundle, uses_followed
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
        budget: candidates to return (None: `DEFAULT_BUDGET`): exactly this many
            whenever the index holds enough distinct items for the user's lists
            (deduplication's gaps are refilled by searching deeper).
        seed: topic-sampling seed (rotate it per day or session to vary topics).
        include_topics: also return each candidate's topics (`Served.topics`).
    """

    user_id: RawId | None = None
    history: tuple[RawId, ...] = ()
    followed_topics: tuple[RawId, ...] = ()
    budget: int | None = None
    seed: int = 0
    include_topics: bool = False


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
    """One candidate as a row, for display (`Served.rows`): placed by `source` at `rank`.

    Attributes:
        item_id: raw item id.
        score: score in the list that placed the item.
        source: that list's `SourceLabel`.
        rank: 0-based rank of the item in that list.
        found_by: every list that returned the item (the placing one included), in
            list order, as ``(label, rank, score)``.
        topics: display names of the item's topics (empty unless the request
            asked for topics).
    """

    item_id: RawId
    score: float
    source: SourceLabel
    rank: int
    found_by: tuple[tuple[SourceLabel, int, float], ...]
    topics: tuple[str, ...]


class CandidateTopics(NamedTuple):
    """The candidates' topics: a table of the topics that occur, and each candidate's rows in it.

    Attributes:
        topic: ``[U]`` raw topic ids, ascending contiguous id.
        name: ``[U]`` display name of each.
        of: ``[N]`` per candidate, indices into `topic` and `name` (the item's topics).
    """

    topic: list[RawId]
    name: list[str]
    of: list[list[int]]


@dataclass(frozen=True)
class Served:
    """The answer to one request, as columns: no per-candidate Python objects.

    The candidate columns are the plan's arrays (``retrieval.candidates``: score,
    list, rank, and every occurrence for ``found_by``); only the raw item ids are
    decoded here. `rows` builds per-candidate records for display; `as_json` is
    the HTTP response body.

    Attributes:
        retrieval: the plan's `Retrieval` (contiguous ids).
        item_ids: ``[N]`` raw item id of each candidate, in merged order.
        lists: ``[L]`` the source of each list, with its budget, hits and filtered hits.
        model_version: the bundle that answered.
        user_id: the user's raw id as the data holds it (an int for integer ids,
            whatever type the request used), or None for a body history.
        unknown_items: raw item ids of the request not in the vocabulary.
        unknown_topics: raw topic ids of the request not in the vocabulary.
        stages_ms: wall time of each stage of the plan in milliseconds.
        topics: the candidates' topics, or None when the request did not ask for them.
    """

    retrieval: Retrieval
    item_ids: list[RawId]
    lists: list[tuple[SourceLabel, int, int, int]]
    model_version: str
    user_id: RawId | None
    unknown_items: int = 0
    unknown_topics: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)
    topics: CandidateTopics | None = None

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows(self) -> list[ServedCandidate]:
        """The candidates as `ServedCandidate` rows with every finder (for display; slow)."""
        c = self.retrieval.candidates
        labels = [label for label, _, _, _ in self.lists]
        names = self.topics.name if self.topics is not None else []
        return [
            ServedCandidate(
                item_id=self.item_ids[n],
                score=float(c.scores[n]),
                source=labels[int(c.source[n])],
                rank=int(c.rank[n]),
                found_by=tuple((labels[o.source], o.rank, o.score) for o in c.found_by(n)),
                topics=() if self.topics is None else tuple(names[t] for t in self.topics.of[n]),
            )
            for n in range(len(self))
        ]

    def as_json(self) -> dict[str, Any]:
        """The HTTP response body: columns, with NumPy arrays for the numeric ones.

        Serialise with ``orjson.dumps(..., option=orjson.OPT_SERIALIZE_NUMPY)``
        (the service does), or turn the arrays into lists first. Shape::

            {"model_version", "user_id",
             "lists": [{"source": {"kind", "slot" | "topic", "topic_name"},
                        "budget", "found", "filtered"}, ...],          # [L]
             "candidates": {"item_id": [N], "score": [N], "list": [N], "rank": [N]},
             "also_found_by": {"candidate": [E], "list": [E], "rank": [E], "score": [E]},
             "unknown_items", "unknown_topics", "stages_ms"}

        Candidate ``n`` was placed by list ``candidates.list[n]`` (an index into
        ``lists``) at 0-based ``rank[n]`` with ``score[n]``. ``also_found_by``
        holds the ``E`` other occurrences of deduplicated items: candidate
        ``also_found_by.candidate[e]`` was also returned by list ``list[e]`` at
        ``rank[e]`` with ``score[e]`` (by candidate, then list). With topics
        requested, ``candidates.topics`` ``[N]`` lists each item's topics as
        indices into a ``"topics": {"topic": [U], "name": [U]}`` table.
        """
        c = self.retrieval.candidates
        # [M] the occurrences other than the one that placed their candidate
        extra = (c.hit_source != c.source[c.hit_candidate]) | (
            c.hit_rank != c.rank[c.hit_candidate]
        )
        candidates: dict[str, Any] = {
            "item_id": self.item_ids,
            "score": _column(c.scores),
            "list": _column(c.source),
            "rank": _column(c.rank),
        }
        body: dict[str, Any] = {
            "model_version": self.model_version,
            "user_id": self.user_id,
            "lists": [
                {"source": s.as_json(), "budget": b, "found": f, "filtered": x}
                for s, b, f, x in self.lists
            ],
            "candidates": candidates,
            "also_found_by": {
                "candidate": _column(c.hit_candidate[extra]),
                "list": _column(c.hit_source[extra]),
                "rank": _column(c.hit_rank[extra]),
                "score": _column(c.hit_score[extra]),
            },
            "unknown_items": self.unknown_items,
            "unknown_topics": self.unknown_topics,
            "stages_ms": self.stages_ms,
        }
        if self.topics is not None:
            candidates["topics"] = self.topics.of
            body["topics"] = {"topic": self.topics.topic, "name": self.topics.name}
        return body


def _column(values: np.ndarray) -> np.ndarray:
    # orjson serialises C-contiguous arrays only; a no-op for the plan's arrays
    return np.ascontiguousarray(values)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT64 = range(INT64_MIN, INT64_MAX + 1)


def _encode(vocab: Any, values: tuple[RawId, ...], name: str, *, listed: bool) -> np.ndarray:
    """Contiguous ids of raw `values` (``-1`` for unknown ones).

    An integer vocabulary takes ints in the int64 range only (a string, bool or
    float is refused, not converted); a string vocabulary takes strings, and ints
    as their decimal text.

    Raises:
        ServeInputError: a value of the wrong type, naming it (``history[3]``).
    """
    if not values:
        return np.zeros(0, dtype=np.int64)
    integer = pa.types.is_integer(vocab.raw.type)
    for i, v in enumerate(values):
        is_int = isinstance(v, int) and not isinstance(v, bool)
        if (is_int and v in _INT64) or (not integer and isinstance(v, str)):
            continue
        where = f"{name}[{i}]" if listed else name
        if integer:
            rule = "must be an integer in the int64 range (this data's ids are integers)"
        else:
            rule = "must be a string or an int64 integer (this data's ids are strings)"
        raise ServeInputError(where, f"{v!r}: {rule}")
    if integer:
        arr = pa.array(values, pa.int64())
    else:
        arr = pa.array([str(v) for v in values], pa.string())
    return np.asarray(vocab.encode(arr), dtype=np.int64)


def _raw(vocab: Any, ids: np.ndarray) -> list[RawId]:
    """Raw ids of contiguous `ids` ``[N]``, in one vectorised take."""
    return vocab.decode(ids).to_pylist() if ids.size else []


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
        uid = int(_encode(bundle.vocab.users, (request.user_id,), "user_id", listed=False)[0])
        if bundle.histories is None:
            raise ServeInputError(
                "user_id", f"{request.user_id!r}: this service has no user data", status=404
            )
        if uid < 0 or uid >= bundle.histories.n_users:
            raise ServeInputError("user_id", f"{request.user_id!r}: unknown user", status=404)
        h = bundle.histories
        followed = h.followed[uid]
        return h.history[uid], h.history_valid[uid], followed[followed >= 0], uid, 0, 0
    items = _encode(bundle.vocab.items, request.history, "history", listed=True)
    topics = _encode(bundle.vocab.topics, request.followed_topics, "followed_topics", listed=True)
    known = items[items >= 0][-seq_len:]
    history = np.full(seq_len, -1, dtype=np.int64)
    valid = np.zeros(seq_len, dtype=bool)
    history[seq_len - known.size :] = known  # right-aligned
    valid[seq_len - known.size :] = bundle.item_valid[known]
    unknown = int((items < 0).sum()), int((topics < 0).sum())
    return history, valid, np.unique(topics[topics >= 0]), 0, *unknown


def _implicit(
    bundle: ServingBundle,
    history: np.ndarray,
    valid: np.ndarray,
    followed: np.ndarray,
    user: int | None,
) -> ImplicitQueries | None:
    """The implicit queries of a history; a known `user`'s from the bundle's table."""
    if not valid.any():
        return None
    if user is not None and bundle.user_queries is not None:
        q = bundle.user_queries  # the tower's output on this user's history, at build time
        return implicit_queries(q.embeddings[user], q.importance[user], q.slot_mask[user])
    if bundle.user_tower is not None:  # the same tower, as its ONNX graph (no followed topics)
        q = bundle.user_tower(history[None], valid[None])
        return implicit_queries(q.embeddings[0], q.importance[0], q.slot_mask[0])
    width = bundle.max_topics
    slots = np.full((1, width), -1, dtype=np.int64)
    slots[0, : min(width, followed.size)] = followed[:width]
    with torch.inference_mode():
        followed_slots = slots if uses_followed(bundle.model) else None
        out = embed_users(bundle.model, history[None], valid[None], followed_slots, batch_size=1)
    return implicit_queries(out.embeddings[0], out.importance[0], out.slot_mask[0])


def _explicit(
    bundle: ServingBundle,
    topics: np.ndarray,
    history: np.ndarray,
    valid: np.ndarray,
    implicit: ImplicitQueries | None,
) -> ExplicitQueries | None:
    if topics.size == 0:
        return None
    if bundle.explicit is not None:  # the conditional model
        t = topics.size
        with torch.inference_mode():
            emb = embed_conditioned(
                bundle.explicit,
                np.repeat(history[None], t, 0),
                np.repeat(valid[None], t, 0),
                topics,
                batch_size=t,
            )
        return finite_queries(topics, emb)
    return explicit_standin(topics, implicit, bundle.topic_centroids)


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
            an id that is not an int64 integer for an integer vocabulary (a string,
            bool or float is never converted), or a budget below 1.
    """
    budget = DEFAULT_BUDGET if request.budget is None else request.budget
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ServeInputError("budget", f"{budget!r}: must be an int >= 1")
    if settings is None:
        settings = PlanSettings(total=budget, k_ex=bundle.k_ex)
    history, valid, followed, key, unknown_items, unknown_topics = _user_inputs(bundle, request)
    user = None if request.user_id is None else key
    implicit = _implicit(bundle, history, valid, followed, user)
    topics = sample_topics(followed, settings.k_ex, seed=request.seed, user=key)
    explicit = _explicit(bundle, topics, history, valid, implicit)
    result = plan_request(
        index=bundle.index,
        popular=bundle.popular,
        settings=settings,
        implicit=implicit,
        explicit=explicit,
        topic_index=bundle.topic_index,
        explicit_index=bundle.explicit_index,
    )
    c = result.candidates
    if c.ids.size and (
        int(c.ids.min()) < 0
        or not np.isfinite(c.scores).all()
        or not np.isfinite(c.hit_score).all()
    ):
        raise RuntimeError("internal: the retrieval plan produced a -1 id or a non-finite score")
    labels = [_label(bundle, s) for s in result.sources]
    lists = [
        (labels[i], int(result.budgets[i]), int(result.found[i]), int(result.filtered[i]))
        for i in range(len(labels))
    ]
    return Served(
        retrieval=result,
        item_ids=_raw(bundle.vocab.items, c.ids),
        lists=lists,
        model_version=bundle.model_version,
        user_id=None if request.user_id is None else _raw(bundle.vocab.users, np.array([key]))[0],
        unknown_items=unknown_items,
        unknown_topics=unknown_topics,
        stages_ms={k: round(v, 3) for k, v in result.stages_ms.items()},
        topics=_candidate_topics(bundle, c.ids) if request.include_topics else None,
    )


def _candidate_topics(bundle: ServingBundle, ids: np.ndarray) -> CandidateTopics:
    """The topics of items `ids` ``[N]``: a table of those that occur, and rows into it."""
    of = bundle.topics_of[ids]  # [N, T] contiguous topic ids, -1 pads
    present = of >= 0
    used, local = np.unique(of[present], return_inverse=True)
    rows = np.full(of.shape, -1, dtype=np.int64)
    rows[present] = local
    names = bundle.vocab.topic_names
    return CandidateTopics(
        topic=_raw(bundle.vocab.topics, used),
        name=[names[t] for t in used.tolist()],
        of=[[t for t in row if t >= 0] for row in rows.tolist()],
    )
