"""The model of a config: ``config.model`` as an implicit or an explicit (conditional) model.

``model.kind`` picks the construction function from `BUILDERS`:

============  =========================  ==========================================
kind          function                   model
============  =========================  ==========================================
``implicit``  `model_from_config`        `RetrievalModel` (``model.name``, Section 3.2)
``explicit``  `conditional_from_config`  `ConditionalRetrievalModel` (Section 3.3)
============  =========================  ==========================================
"""

from __future__ import annotations

from collections.abc import Callable

from multiembed.config import Config
from multiembed.errors import ConfigError
from multiembed.nn.builders import build_model
from multiembed.nn.conditional import ConditionalRetrievalModel
from multiembed.nn.conditional_builder import build_conditional_model
from multiembed.nn.features import ItemFeatures
from multiembed.nn.retrieval import RetrievalModel

TrainableModel = RetrievalModel | ConditionalRetrievalModel


def model_from_config(config: Config, features: ItemFeatures, *, n_topics: int) -> RetrievalModel:
    """Build the `RetrievalModel` that ``config.model`` describes, in training mode.

    ``n_topics`` is the followed-topic vocabulary, used only with
    ``model.followed_topics``; ``association = "auto"`` leaves the choice to
    `build_model` (Gumbel for self-attention and interest tokens, arg-max otherwise).

    Example:
        >>> import torch
        >>> features = ItemFeatures(n_items=30, vector=torch.randn(30, 4))
        >>> cfg = Config()
        >>> model = model_from_config(cfg, features, n_topics=5)
        >>> model.k, model.dim
        (4, 32)
    """
    m = config.model
    return build_model(
        m.name,
        features=features,
        k=m.k,
        dim=m.dim,
        id_dim=m.id_dim,
        hidden_dim=m.hidden_dim,
        association=None if m.association == "auto" else m.association,
        tau=m.tau,
        iterations=m.iterations,
        validity_aware=m.validity_aware,
        dcm_init=m.dcm_init,
        dcm_routing=m.dcm_routing,
        dcm_min_share=m.dcm_min_share,
        dcm_recency=m.dcm_recency,
        dcm_affinity=m.dcm_affinity,
        pfs_topics=m.pfs_topics,
        dhen_preset=m.dhen_preset,
        temperature=m.temperature,
        n_followed_topics=n_topics if m.followed_topics else 0,
        use_item_id=m.use_item_id,
        user_summary=m.user_summary,
        scoring=m.scoring,
        share_items=m.share_items,
        residual_weight=m.residual_weight,
        global_interest=m.global_interest,
        summary_global_only=m.summary_global_only,
        seed=m.seed,
    )


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
    m = config.model
    if m.followed_topics:
        raise ConfigError(
            [
                "model.followed_topics = true: not supported with model.kind = 'explicit' "
                "(the conditional tower is evaluated and served with a topic only)"
            ]
        )
    return build_conditional_model(
        features=features,
        n_topics=n_topics,
        association=m.condition,
        condition_examples=m.condition_examples,
        dim=m.dim,
        id_dim=m.id_dim,
        hidden_dim=m.hidden_dim,
        dhen_preset=m.dhen_preset,
        temperature=m.temperature,
        use_item_id=m.use_item_id,
        followed_topics=False,
        seed=m.seed,
    )


ModelBuilder = Callable[..., TrainableModel]
BUILDERS: dict[str, ModelBuilder] = {
    "implicit": model_from_config,
    "explicit": conditional_from_config,
}


def trainable_from_config(
    config: Config, features: ItemFeatures, *, n_topics: int
) -> TrainableModel:
    """The model of ``config.model.kind``: `model_from_config` or `conditional_from_config`."""
    return BUILDERS[config.model.kind](config, features, n_topics=n_topics)


def model_label(config: Config) -> str:
    """The model's name in manifests and versions: ``model.name``, or ``cr_<condition>``.

    Example:
        >>> from multiembed.config import ModelConfig
        >>> model_label(Config()), model_label(Config(model=ModelConfig(kind="explicit")))
        ('dcm', 'cr_source')
    """
    m = config.model
    return m.name if m.kind == "implicit" else f"cr_{m.condition}"
