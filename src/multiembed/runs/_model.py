"""The model of a config: ``config.model`` as an implicit or an explicit (conditional) model.

``model.kind`` picks the construction function (`trainable_from_config`):

============  =========================  ==========================================
kind          function                   model
============  =========================  ==========================================
``implicit``  `model_from_config`        `RetrievalModel` (``model.name``, Section 3.2)
``explicit``  `conditional_from_config`  `ConditionalRetrievalModel` (Section 3.3)
============  =========================  ==========================================
"""

from __future__ import annotations

from multiembed.config import Config
from multiembed.errors import ConfigError
from multiembed.nn.builders import build_conditional_model, build_model
from multiembed.nn.conditional import ConditionalRetrievalModel
from multiembed.nn.features import ItemFeatures
from multiembed.nn.retrieval import RetrievalModel

TrainableModel = RetrievalModel | ConditionalRetrievalModel


def model_from_config(config: Config, features: ItemFeatures, *, n_topics: int) -> RetrievalModel:
    """Build the `RetrievalModel` that ``config.model`` describes, in training mode.

    ``n_topics`` is the followed-topic vocabulary, used only with
    ``model.followed_topics``; see `build_model`.

    Example:
        >>> import torch
        >>> features = ItemFeatures(n_items=30, vector=torch.randn(30, 4))
        >>> cfg = Config()
        >>> model = model_from_config(cfg, features, n_topics=5)
        >>> model.k, model.dim
        (4, 32)
    """
    return build_model(config.model, features=features, n_topics=n_topics)


def conditional_from_config(
    config: Config, features: ItemFeatures, *, n_topics: int
) -> ConditionalRetrievalModel:
    """Build the `ConditionalRetrievalModel` of ``config.model`` (``kind = "explicit"``).

    ``model.condition`` names the association (``"source"`` or ``"item"``); the
    implicit-only settings (``name``, ``k``, ``association``, routing) are ignored.
    ``n_topics`` is the topic vocabulary of conditions and item topics.

    Raises:
        ConfigError: ``model.followed_topics = true`` (evaluation and serving condition the
            tower on a topic only, so a tower reading followed topics cannot be evaluated).

    Example:
        >>> import torch
        >>> from multiembed.config import ModelConfig
        >>> features = ItemFeatures(n_items=30, topics=torch.arange(30).remainder(5)[:, None])
        >>> cfg = Config(model=ModelConfig(kind="explicit", condition="item"))
        >>> model = conditional_from_config(cfg, features, n_topics=5)
        >>> type(model.association).__name__, model.dim
        ('ItemInterest', 32)
    """
    if config.model.followed_topics:
        raise ConfigError(
            [
                "model.followed_topics = true: not supported with model.kind = 'explicit' "
                "(the conditional tower is evaluated and served with a topic only)"
            ]
        )
    return build_conditional_model(config.model, features=features, n_topics=n_topics)


def trainable_from_config(
    config: Config, features: ItemFeatures, *, n_topics: int
) -> TrainableModel:
    """The model of ``config.model.kind``: `model_from_config` or `conditional_from_config`."""
    if config.model.kind == "implicit":
        return model_from_config(config, features, n_topics=n_topics)
    return conditional_from_config(config, features, n_topics=n_topics)


def model_label(config: Config) -> str:
    """The model's name in manifests and versions: ``model.name``, or ``cr_<condition>``.

    Example:
        >>> from multiembed.config import ModelConfig
        >>> model_label(Config()), model_label(Config(model=ModelConfig(kind="explicit")))
        ('dcm', 'cr_source')
    """
    m = config.model
    return m.name if m.kind == "implicit" else f"cr_{m.condition}"
