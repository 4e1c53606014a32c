"""Trained runs as candidate sources, and arms read from a specification string.

A run directory (`multiembed.runs.load_run`) becomes a source by what its model
does: a model that embeds users (`multiembed.runs.UserItemModel`: single, MIND,
DCM, ...) is an implicit source searching an exact index of the valid items; a
Conditional Retrieval model is an explicit source, one embedding per sampled
followed topic, searched inside the topic when the arm's plan filters by
relevance (`multiembed.index.TopicIndex`), over every item otherwise.

Arm specification (`parse_arm`): ``NAME=PART[,PART...]`` where a part is a run
directory, ``legacy`` (`LegacyTopicSource`), ``oracle``, ``random``, or an
option: ``nofilter`` (CR without the relevance filter) or ``global_topk`` (the
merge of Section 4.4 instead of round-robin).
"""

from __future__ import annotations

import dataclasses
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from multiembed.errors import ConfigError
from multiembed.index import ExactIndex, TopicIndex
from multiembed.retrieve import PlanSettings, global_topk_merger, round_robin_merge
from multiembed.runs import (
    ConditionalModel,
    UserItemModel,
    embed_conditioned,
    embed_items,
    embed_users,
    inference,
    load_run,
)
from multiembed.simulate._arm import Arm
from multiembed.simulate._population import Population
from multiembed.simulate._sources import (
    EXPLICIT,
    IMPLICIT,
    CandidateSource,
    DayRequest,
    LegacyTopicSource,
    OracleSource,
    RandomSource,
    SourceLists,
    empty_lists,
)

KEYWORDS: Final = ("legacy", "oracle", "random")
OPTIONS: Final = ("nofilter", "global_topk")


def _history(request: DayRequest, population: Population, length: int) -> tuple[np.ndarray, ...]:
    history = request.history[:, -length:]
    valid = (history >= 0) & population.item_valid[np.maximum(history, 0)]
    return history, valid


def _item_index(model: Any, population: Population) -> tuple[np.ndarray, np.ndarray, ExactIndex]:
    """The valid items' ids ``[N]``, their vectors ``[N, D]`` and an exact index of them."""
    ids = np.flatnonzero(population.item_valid)
    with inference(model):
        vectors = embed_items(model, ids, batch_size=1024)
    index = ExactIndex(vectors.shape[1])
    index.add(ids, vectors)
    return ids, vectors, index


@dataclass(eq=False)
class ImplicitRunSource:
    """A trained implicit-interest model: ``K`` embeddings per user, each searched exactly."""

    kind = IMPLICIT
    name: str
    model: UserItemModel
    population: Population
    _: KW_ONLY
    seq_len: int
    max_topics: int | None
    batch_size: int = 256

    def __post_init__(self) -> None:
        self.index = _item_index(self.model, self.population)[2]

    def lists(self, request: DayRequest) -> SourceLists:
        history, valid = _history(request, self.population, self.seq_len)
        followed = None
        if self.max_topics is not None:
            followed = _cut(self.population.followed[request.users], self.max_topics)
        with inference(self.model):
            users = embed_users(self.model, history, valid, followed, batch_size=self.batch_size)
        b, k, d = users.embeddings.shape
        hits = self.index.search(users.embeddings.reshape(b * k, d), request.depth)
        importance = np.where(users.slot_mask, users.importance, 0.0)
        return SourceLists(
            hits.ids.reshape(b, k, -1),
            hits.scores.reshape(b, k, -1),
            importance.astype(np.float64),
            np.full((b, k), -1, dtype=np.int64),
        )


@dataclass(eq=False)
class ConditionalRunSource:
    """A trained Conditional Retrieval model: one embedding per sampled followed topic."""

    kind = EXPLICIT
    name: str
    model: ConditionalModel
    population: Population
    _: KW_ONLY
    seq_len: int
    relevance_filter: bool

    def __post_init__(self) -> None:
        ids, vectors, self.exact = _item_index(self.model, self.population)
        self.topic_index: TopicIndex | None = None
        if self.relevance_filter:
            self.topic_index = TopicIndex.build(ids, vectors, self.population.topic_members)

    def lists(self, request: DayRequest) -> SourceLists:
        b, e = request.topics.shape
        out = empty_lists(b, e, request.depth)
        real = np.flatnonzero(request.topics.ravel() >= 0)
        if real.size == 0:
            return out
        history, valid = _history(request, self.population, self.seq_len)
        owner = real // e
        topics = request.topics.ravel()[real]
        with inference(self.model):
            queries = embed_conditioned(
                self.model, history[owner], valid[owner], topics, batch_size=topics.size
            )
        if self.topic_index is None:
            hits = self.exact.search(queries, request.depth)
        else:
            hits = self.topic_index.search(queries, topics, request.depth).hits
        out.ids.reshape(b * e, -1)[real] = hits.ids
        out.scores.reshape(b * e, -1)[real] = hits.scores
        out.topics.reshape(-1)[real] = topics
        return out


def _cut(followed: np.ndarray, width: int) -> np.ndarray:
    """``[B, F]`` followed topics padded or cut to ``[B, width]``."""
    out = np.full((followed.shape[0], width), -1, dtype=np.int64)
    out[:, : followed.shape[1]] = followed[:, :width]  # slices stop at the narrower
    return out


def run_source(
    run_dir: Path, data_dir: Path, population: Population, *, relevance_filter: bool
) -> CandidateSource:
    """The candidate source of a trained run (checked against `data_dir`)."""

    run = load_run(Path(run_dir), data_dir=Path(data_dir))
    cfg = run.config
    name = Path(run_dir).name
    seq_len = cfg.examples.seq_len
    if isinstance(run.model, UserItemModel):
        topics = cfg.examples.max_topics if cfg.model.followed_topics else None
        return ImplicitRunSource(name, run.model, population, seq_len=seq_len, max_topics=topics)
    return ConditionalRunSource(  # a run's other model kind: Conditional Retrieval
        name, run.model, population, seq_len=seq_len, relevance_filter=relevance_filter
    )


def parse_arm(spec: str) -> tuple[str, tuple[str, ...]]:
    """``"NAME=PART[,PART...]"`` -> ``(NAME, parts)``.

    >>> parse_arm("treatment=runs/dcm, runs/cr,nofilter")
    ('treatment', ('runs/dcm', 'runs/cr', 'nofilter'))
    """
    name, sep, rest = spec.partition("=")
    parts = tuple(p.strip() for p in rest.split(",") if p.strip())
    if not sep or not name.strip() or not parts:
        raise ConfigError(
            [
                f"--arms {spec!r}: expected NAME=PART[,PART...] (a part is a run directory, "
                f"{', '.join(KEYWORDS)}, or an option: {', '.join(OPTIONS)})"
            ]
        )
    return name.strip(), parts


def build_arm(
    name: str,
    parts: tuple[str, ...],
    *,
    data_dir: Path,
    population: Population,
    plan: PlanSettings,
    seed: int,
) -> Arm:
    """The arm of `parts` (run directories, keywords and options; see `parse_arm`)."""
    options = {p for p in parts if p in OPTIONS}
    settings = dataclasses.replace(
        plan, relevance_filter=plan.relevance_filter and "nofilter" not in options
    )
    sources: list[CandidateSource] = []
    for part in parts:
        if part in OPTIONS:
            continue
        if part == "legacy":
            sources.append(LegacyTopicSource(population, seed=seed))
        elif part == "oracle":
            sources.append(OracleSource(population))
        elif part == "random":
            sources.append(RandomSource(population, seed=seed))
        elif Path(part).is_dir():
            sources.append(
                run_source(
                    Path(part), data_dir, population, relevance_filter=settings.relevance_filter
                )
            )
        else:
            raise ConfigError(
                [
                    f"arm {name!r}: {part!r} is neither a run directory nor one of "
                    f"{', '.join(KEYWORDS + OPTIONS)}"
                ]
            )
    merge = global_topk_merger if "global_topk" in options else round_robin_merge
    return Arm(name, tuple(sources), settings, merge)
