"""The model of a config: `ModelConfig` fields passed to `build_model`."""

from __future__ import annotations

from multiembed.config import Config
from multiembed.nn.builders import build_model
from multiembed.nn.features import ItemFeatures
from multiembed.nn.retrieval import RetrievalModel


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
        dcm_routing=m.dcm_routing,
        pfs_topics=m.pfs_topics,
        dhen_preset=m.dhen_preset,
        temperature=m.temperature,
        n_followed_topics=n_topics if m.followed_topics else 0,
        use_item_id=m.use_item_id,
        seed=m.seed,
    )
