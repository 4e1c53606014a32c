"""Models for tests, built from a `ModelConfig` with the builders' earlier defaults.

The builders read a `ModelConfig`, whose defaults are tuned for real data; the model
tests pin values under the settings the builders once defaulted to (the paper's
Eq. 9 with temperature 0.05, separate towers, every DCM cluster kept).
"""

from __future__ import annotations

from typing import Any

from multiembed.config import ModelConfig
from multiembed.nn.builders import build_conditional_model, build_model
from multiembed.nn.conditional import ConditionalRetrievalModel
from multiembed.nn.features import ItemFeatures
from multiembed.nn.retrieval import RetrievalModel

EARLIER_DEFAULTS: dict[str, Any] = {
    "temperature": 0.05,
    "scoring": "associated",
    "history_negatives": "keep",
    "share_items": False,
    "dcm_min_share": 0.0,
}


def implicit_model(
    name: str, *, features: ItemFeatures, n_followed_topics: int = 0, **settings: Any
) -> RetrievalModel:
    """`build_model` of ``ModelConfig(name=name, **settings)`` (earlier defaults);
    ``n_followed_topics > 0`` turns ``followed_topics`` on with that vocabulary."""
    model = ModelConfig(
        name=name,  # type: ignore[arg-type]
        followed_topics=n_followed_topics > 0,
        **{**EARLIER_DEFAULTS, **settings},
    )
    return build_model(model, features=features, n_topics=n_followed_topics)


def conditional_model(
    association: str, *, features: ItemFeatures, n_topics: int, **settings: Any
) -> ConditionalRetrievalModel:
    """`build_conditional_model` of ``ModelConfig(kind="explicit", condition=association,
    **settings)`` with the loss temperature of 0.05."""
    model = ModelConfig(
        kind="explicit",
        condition=association,  # type: ignore[arg-type]
        **{"temperature": 0.05, **settings},
    )
    return build_conditional_model(model, features=features, n_topics=n_topics)
