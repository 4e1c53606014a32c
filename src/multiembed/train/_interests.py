"""How many interests a trained model serves, chosen on the validation users.

A DCM's weights do not depend on K: the number of farthest-point seeds is a
setting of the routing, not a shape. So after training (``train.select_interests``)
the same weights are scored twice on the validation users, with the K it was
trained with and with K' = 1 (one cluster: the attention-pooled whole history),
by the mean per-user Recall@`SELECTION_N` of `Validator.user_recall` (each
validation user's history out of the ranking, the outside benchmark's protocol).
The better one is served; a tie keeps K. With ``train.select_during`` (the default)
the same choice is made at each validation during training (`choose_during_training`),
and once the one embedding wins, the rest of the run trains it
(`RetrievalModel.serve_interests`): otherwise the K = 1 query would be trained only
inside the max over the K cluster queries, and on MovieLens 100k it then retrieves
about 4 % worse than the same query trained as itself. The manifest
records the choice (``training.interests``: `InterestChoice.document`) and
`multiembed.runs.load_run` builds the model with the served K. The run's
``config.toml`` keeps the K it was trained with, so training again from it
selects again.

On public logs where one whole-history query retrieves better than several
cluster queries (MovieLens 100k: Recall@50 0.445 against 0.416 with K = 4, three
seeds), the run serves one embedding per user; where the interests retrieve
better apart it should keep them, but the validation users are warm (the default
``users`` split trains on their histories) and lean towards the whole-history
query: on Last.fm it served one embedding on every seed and lost 5 %. The
per-record HR@K that selects the epoch cannot make this choice at all: it leaves
the history in the ranking, where a whole-history query ranks the history itself
first.

Models whose weights depend on K (self-attention, interest tokens, MIND),
``model.global_interest`` (whose last slot is the whole
history) and explicit models keep ``model.k``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from multiembed.config import Config
from multiembed.nn.features import ItemFeatures
from multiembed.runs import model_from_config
from multiembed.train._validation import Validator

SELECTION_N = 50
"""The cut-off of the Recall that picks the served K (the outside benchmark's headline)."""


class InterestChoice(NamedTuple):
    """The number of interests a run serves, and the evidence.

    Attributes:
        trained_k: ``model.k``, the K the model was trained with.
        served_k: the K served: ``trained_k``, or 1 where the whole-history query scored
            better.
        scores: K -> mean validation Recall@`SELECTION_N` for K = 1 and ``trained_k``
            (None: no user with an unseen target).
        users: validation users the Recall averages.
    """

    trained_k: int
    served_k: int
    scores: dict[int, float | None]
    users: int
    step: int | None = None

    def document(self) -> dict[str, Any]:
        """The manifest's ``training.interests``."""
        return {
            "trained_k": self.trained_k,
            "served_k": self.served_k,
            "metric": f"validation recall@{SELECTION_N}, history items out",
            "scores": {str(k): v for k, v in self.scores.items()},
            "users": self.users,
            "step": self.step,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> InterestChoice:
        """The choice `document` wrote."""
        scores = {int(k): v for k, v in document["scores"].items()}
        return cls(
            int(document["trained_k"]),
            int(document["served_k"]),
            scores,
            int(document["users"]),
            document.get("step"),
        )


def choose_interests(
    config: Config,
    model: nn.Module,
    validator: Validator,
    *,
    features: ItemFeatures,
    n_topics: int,
) -> InterestChoice | None:
    """Score ``model``'s weights with K' = ``model.k`` and K' = 1; None when K is fixed.

    K is fixed (None) for an explicit model, ``model.k = 1``,
    ``model.global_interest``, or weights that do not fit a model built with a
    smaller K (the extractor's parameters depend on K). ``model`` is left as it was.
    """
    m = config.model
    if m.kind != "implicit" or m.k == 1 or m.global_interest:
        return None
    one = dataclasses.replace(config, model=dataclasses.replace(m, k=1))
    whole = model_from_config(one, features, n_topics=n_topics)
    try:
        whole.load_state_dict(model.state_dict())
    except RuntimeError:  # the weights' shapes depend on K
        return None
    whole.to(next(model.parameters()).device)
    recalls = {m.k: validator.user_recall(model, SELECTION_N)}
    recalls[1] = validator.user_recall(whole, SELECTION_N)
    scores = {
        k: None if np.isnan(r).all() else float(np.nanmean(r)) for k, r in sorted(recalls.items())
    }
    served = m.k if scores[1] is None or (scores[m.k] or 0.0) >= scores[1] else 1
    users = int((~np.isnan(recalls[m.k])).sum())
    return InterestChoice(m.k, served, scores, users)


def choose_during_training(
    config: Config,
    model: nn.Module,
    validator: Validator,
    *,
    features: ItemFeatures,
    n_topics: int,
    step: int,
) -> InterestChoice | None:
    """`choose_interests` at a validation (``train.select_during``): the choice when the one
    embedding wins at ``step``, else None. Every global RNG state is left as it was, so
    the choice does not move the run's trajectory."""
    with torch.random.fork_rng(devices=[]):
        choice = choose_interests(config, model, validator, features=features, n_topics=n_topics)
    if choice is None or choice.served_k != 1:
        return None
    return choice._replace(step=step)
