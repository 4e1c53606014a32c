"""Validation during training: HR@K of the current model on held-out validation users.

At each epoch's end (and every ``train.validate_every`` steps) the loop asks a
`Validator` for the paper's
HR@K (Section 4.1.1) of the model as it stands: each record's positive ranked
among the evaluation corpus (``eval.corpus_size`` most-engaged items) by the
max over the user's embeddings. Nothing is re-implemented here: the records and
corpus come from `load_eval_data`, the embeddings from `embed_users` /
`embed_items` / `embed_conditioned`, the ranks from `positive_ranks` and the
rates from `hit_rate_at_k`: the same computation as ``eval.json``'s ``hr@K``
(implicit) and ``explicit_hr@K`` (explicit), on other users.

The records are those of the split's *validation* users (``split.valid_share``;
`load_eval_data` with ``which="valid"``), never the test users `evaluate`
reports on. The slice is ``train.validation_records`` of them, whole users in
the seeded order of `EvalConfig.max_users` (`load_eval_data`): fixed,
the same for every training seed and every call, so points of one curve and
curves of several runs are comparable.

Validation never touches the training trajectory: the model is evaluated in eval
mode without gradient (deterministic forwards, no draw from the model's
generators) and put back in its mode after, and every RNG state the run
depends on (`multiembed.train._rng`) is captured before and restored after, so
that even a stray draw could not shift the training streams.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from torch import nn

from multiembed.config import Config
from multiembed.errors import DataError
from multiembed.eval import EvalData, corpus_position, load_eval_data
from multiembed.eval.metrics import hit_rate_at_k, positive_ranks, unseen_recall
from multiembed.runs import (
    VALIDATION_K,
    ConditionalModel,
    UserItemModel,
    embed_conditioned,
    embed_items,
    embed_users,
    headline,
    inference,
)
from multiembed.train import _rng

USER_BATCH = 256
ITEM_BATCH = 1024


class Validation(NamedTuple):
    """One validation of the model.

    Attributes:
        metrics: ``{"hr@K": rate}`` for an implicit model, ``{"explicit_hr@K": rate}`` for
            a conditional one (None when no record of the slice has a logged topic).
        records: records of the slice the rates average over.
        seconds: wall time of the call (loading the slice is `Validator.load`'s).
        score: what model selection compares: the headline HR@100, or, when the corpus
            has at most 100 items (where HR@100 is 1 for every model), HR at a tenth
            of the corpus (at least 1), also in `metrics`.
    """

    metrics: dict[str, float | None]
    records: int
    seconds: float
    score: float | None = None


def validation_ks(config: Config) -> tuple[int, ...]:
    """The cut-offs measured: ``eval.ks`` and `VALIDATION_K`, ascending.

    >>> validation_ks(Config())
    (50, 100, 1000)
    """
    return tuple(sorted({*config.eval.ks, VALIDATION_K}))


class Validator:
    """HR@K of a model on the fixed validation slice of a data directory.

    The slice is read by `load` (the loop calls it before its first step when the
    run will validate, so that unusable evaluation data stops it before training),
    or else on the first call.

    Args:
        config: the run's config (split, examples, eval corpus and cut-offs,
            ``train.validation_records``, ``model.followed_topics``).
        data_dir: the prepared data directory the model trains on.

    Example:
        >>> validator = Validator(Config(), Path("data/synthetic"))  # nothing read yet
        >>> validator.ks
        (50, 100, 1000)
    """

    def __init__(self, config: Config, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.ks = validation_ks(config)
        self._data: EvalData | None = None

    def load(self) -> EvalData:
        """The validation slice, read on the first call.

        Raises:
            DataError: the data directory has no usable evaluation record (the
                message names ``train.validate_every``).
        """
        if self._data is None:
            c = self.config
            sliced = dataclasses.replace(c.eval, max_users=c.train.validation_records)
            try:
                self._data = load_eval_data(
                    self.data_dir,
                    split=c.split,
                    examples=c.examples,
                    config=sliced,
                    which="valid",
                )
            except DataError as err:
                raise DataError(
                    f"train.validation = true: model selection needs validation records: "
                    f"{err} (raise split.valid_share, or set train.validation = false to "
                    "train without validation)"
                ) from err
        return self._data

    def __call__(self, model: nn.Module) -> Validation:
        """Validate `model` (eval mode for the call; its mode and every RNG state restored)."""
        started = time.perf_counter()
        data = self.load()
        states = _rng.capture(model)
        implicit = model if isinstance(model, UserItemModel) else None
        explicit = model if isinstance(model, ConditionalModel) else None
        metrics: dict[str, float | None] = {}
        try:
            with inference(implicit, explicit):
                if implicit is not None:
                    metrics |= self._implicit(implicit, data)
                if explicit is not None:
                    metrics |= self._explicit(explicit, data)
        finally:
            _rng.restore(model, *states)
        score = headline(metrics)
        if data.corpus.size <= VALIDATION_K:
            score = metrics.get(f"hr@{self.selection_k(data)}", score)
        return Validation(metrics, len(data.records), time.perf_counter() - started, score)

    def user_recall(self, model: nn.Module, n: int) -> np.ndarray:
        """``[U]`` Recall@`n` of an implicit model for each validation user: the user's
        request (its first record's history) against every item but those of that
        history, its targets those not in it (`unseen_recall`, the outside benchmark's
        protocol); NaN for a user without an unseen target. Eval mode for the call; its
        mode and every RNG state restored.
        """
        if not isinstance(model, UserItemModel):
            raise TypeError(f"user_recall: expected an implicit model, got {type(model).__name__}")
        data = self.load()
        rec = data.records
        first = rec.first
        states = _rng.capture(model)
        try:
            with inference(model, None):
                items = embed_items(model, np.arange(data.n_items), batch_size=ITEM_BATCH)
                users = embed_users(
                    model,
                    rec.history[first],
                    rec.history_valid[first],
                    rec.followed[first] if self.config.model.followed_topics else None,
                    batch_size=USER_BATCH,
                )
        finally:
            _rng.restore(model, *states)
        return unseen_recall(
            users.embeddings,
            items,
            list(rec.history[first]),
            rec.user_items(),
            n,
            query_mask=users.slot_mask,
        )

    def selection_k(self, data: EvalData) -> int:
        """The cut-off model selection reads on a corpus of at most `VALIDATION_K` items."""
        return max(1, data.corpus.size // 10)

    def _items(
        self, model: UserItemModel | ConditionalModel, data: EvalData, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``([C, D], [R', D])``: embeddings of the corpus and of `targets` only."""
        ids = np.union1d(data.corpus, targets)  # sorted, so rows are found by search
        emb = embed_items(model, ids, batch_size=ITEM_BATCH)  # [|ids|, D]
        return emb[np.searchsorted(ids, data.corpus)], emb[np.searchsorted(ids, targets)]

    def _implicit(self, model: UserItemModel, data: EvalData) -> dict[str, float | None]:
        rec = data.records
        corpus, positives = self._items(model, data, rec.target)
        users = embed_users(
            model,
            rec.history,
            rec.history_valid,
            rec.followed if self.config.model.followed_topics else None,
            batch_size=USER_BATCH,
        )
        ranks = positive_ranks(
            users.embeddings,
            corpus,
            positives,
            query_mask=users.slot_mask,
            positive_index=corpus_position(data.corpus, rec.target),
        )
        ks = self.ks
        if data.corpus.size <= VALIDATION_K:
            ks = tuple(sorted({*ks, self.selection_k(data)}))
        return {f"hr@{k}": v for k, v in hit_rate_at_k(ranks, ks).items()}

    def _explicit(self, model: ConditionalModel, data: EvalData) -> dict[str, float | None]:
        rec = data.records
        rows = np.flatnonzero(rec.source_topic >= 0)  # records conditioned on a logged topic
        if rows.size == 0:
            return {f"explicit_hr@{k}": None for k in self.ks}
        target = rec.target[rows]
        corpus, positives = self._items(model, data, target)
        cond = embed_conditioned(
            model,
            rec.history[rows],
            rec.history_valid[rows],
            rec.source_topic[rows],
            batch_size=USER_BATCH,
        )
        ranks = positive_ranks(
            cond, corpus, positives, positive_index=corpus_position(data.corpus, target)
        )
        return {f"explicit_hr@{k}": v for k, v in hit_rate_at_k(ranks, self.ks).items()}
