"""Builders: read a `ModelConfig`, wire modules. The one place names map to classes.

Every model is one `UserTower` (an `ItemSummariser` for the history, Eq. 4; a DHEN
crossing, Appendix A, preset ``small`` or ``paper``), an `ItemTower` and the Eq. 9
loss; what differs is the tower's condition source and the association.

`build_model` assembles a `RetrievalModel` for one of the implicit-interest models
compared in the paper (Table 1), its conditions an `ExtractedConditions`:

=================  ==========================  ==================
``model.name``     extractor                   default association
=================  ==========================  ==================
``single``         `SingleExtractor` (K = 1)   arg-max
``mind``           `CapsuleExtractor`          arg-max
``dcm``            `DCMExtractor`              arg-max
``self_attention`` `SelfAttentionExtractor`    Gumbel
``interest_token`` `InterestTokenExtractor`    Gumbel
``pfs``            `SubsequenceExtractor`      arg-max
=================  ==========================  ==================

`build_conditional_model` assembles a `ConditionalRetrievalModel` (explicit interests,
Section 3.3), its conditions `TopicConditions`, with the named condition association:

===================  ================  =========================================
``model.condition``  class             the condition of a training example
===================  ================  =========================================
``source``           `SourceInterest`  the topic logged with the engagement
``item``             `ItemInterest`    a topic sampled from the engaged item's
===================  ================  =========================================

The config has checked every setting on its own; the builders check only what
depends on the item table or the topic vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import get_args, get_type_hints

import torch
from torch import Tensor, nn

from multiembed.config import ModelConfig
from multiembed.errors import ConfigError
from multiembed.nn.association import ArgmaxAssociation, GumbelAssociation
from multiembed.nn.conditional import ConditionalRetrievalModel, ItemInterest, SourceInterest
from multiembed.nn.conditions import ExtractedConditions, TopicConditions
from multiembed.nn.dhen import DHEN
from multiembed.nn.dhen_sizes import PRESETS
from multiembed.nn.extractors import (
    CapsuleExtractor,
    Clustering,
    DCMExtractor,
    InterestExtractor,
    InterestTokenExtractor,
    SelfAttentionExtractor,
    SingleExtractor,
    SubsequenceExtractor,
    assign_topics,
    kmeans_topics,
)
from multiembed.nn.features import ItemFeatures
from multiembed.nn.functional import capsule_routing, single_assignment_routing
from multiembed.nn.item_tower import ItemTower
from multiembed.nn.retrieval import Negatives, RetrievalModel
from multiembed.nn.summariser import ItemSummariser, SummaryInputs
from multiembed.nn.user_tower import (
    Residual,
    Summary,
    UserTower,
    init_summary_bounded,
    n_user_fields,
)

MODEL_NAMES: tuple[str, ...] = get_args(get_type_hints(ModelConfig)["name"])
_GUMBEL_BY_DEFAULT = ("self_attention", "interest_token")


def build_model(model: ModelConfig, *, features: ItemFeatures, n_topics: int = 0) -> RetrievalModel:
    """Build the implicit-interest `RetrievalModel` of ``model`` (``model.name``).

    Args:
        model: the model settings; ``kind``, ``condition`` and ``condition_examples``
            are not read. ``association = "auto"`` picks the paper's: Gumbel for
            ``self_attention`` and ``interest_token`` (with the affinities it perturbs on
            the loss's logit scale, cosine / ``temperature``), arg-max otherwise.
        features: the item feature table; the summarisers use its vector, categorical
            codes and topics, whichever are present.
        n_topics: the followed-topic vocabulary, read with ``model.followed_topics``.

    ``model.seed`` seeds the parameter initialisation (the caller's global RNG state is
    left untouched), the extractor's generator and the association's generator.

    Returns:
        A `RetrievalModel` in training mode.

    Raises:
        ConfigError: listing every rule the item table breaks for this model.

    Example:
        >>> features = ItemFeatures(n_items=50, vector=torch.randn(50, 4))
        >>> model = build_model(ModelConfig(name="mind", k=3, dim=8), features=features)
        >>> model.k, model.dim, type(model.user_tower.conditions.extractor).__name__
        (3, 8, 'CapsuleExtractor')
    """
    _raise(_feature_problems(features) or _pfs_problems(model, features), "build_model")
    n_followed = n_topics if model.followed_topics else 0
    summary = model.user_summary != "none"
    global_slot = model.global_interest and model.name != "single"
    with _seeded(model.seed):
        extractor = _extractor(model, features)
        crossing = _crossing(model, followed=n_followed > 0, summary=summary)
        history = _summariser(model, features, features.n_topics())
        item_tower = ItemTower(
            summariser=history
            if model.share_items
            else _summariser(model, features, features.n_topics()),
            out_dim=model.dim,
        )
        user_tower = UserTower(
            summariser=history,
            conditions=ExtractedConditions(extractor=extractor, global_slot=global_slot),
            crossing=crossing,
            summary=Summary(
                pool=SingleExtractor(dim=model.dim) if model.user_summary == "attention" else None,
                field=summary,
                global_only=model.summary_global_only and global_slot and summary,
            ),
            n_followed_topics=n_followed,
            residual=(
                Residual(item_tower.proj, model.residual_weight) if model.share_items else None
            ),
        )
    gumbel = model.association == "gumbel" or (
        model.association == "auto" and model.name in _GUMBEL_BY_DEFAULT
    )
    association: nn.Module = (
        GumbelAssociation(
            tau=model.tau,
            generator=torch.Generator().manual_seed(model.seed + 1),
            logit_scale=1.0 / model.temperature,
        )
        if gumbel
        else ArgmaxAssociation()
    )
    return RetrievalModel(
        user_tower=user_tower,
        item_tower=item_tower,
        association=association,
        features=features,
        temperature=model.temperature,
        negatives=Negatives(model.scoring, model.history_negatives),
    )


def build_conditional_model(
    model: ModelConfig, *, features: ItemFeatures, n_topics: int
) -> ConditionalRetrievalModel:
    """Build the Conditional Retrieval model of ``model`` (``model.condition``).

    Args:
        model: the model settings; the implicit-only ones (``name``, ``k``,
            ``association``, routing, the summary and residual settings) are not read.
            ``condition_examples`` (item interest only): train on every engagement whose
            item has a topic (``"all"``, Lin et al.'s bootstrap) or only on those with a
            logged condition (``"logged"``: the same engagements as source interest).
        features: the item feature table, as for `build_model`.
        n_topics: the topic vocabulary: conditions, followed topics and item topics are
            ``0 .. n_topics - 1``.

    The tower's summary is the mean of the valid history items only (a hidden item
    or one with missing features is no evidence of interest, and a mean pool has no
    routing to discount it). ``model.seed`` seeds the parameter initialisation (the
    caller's global RNG state is left untouched) and `ItemInterest`'s generator.

    Returns:
        A `ConditionalRetrievalModel` in training mode.

    Raises:
        ConfigError: listing every rule the item table and ``n_topics`` break.

    Example:
        >>> topics = torch.tensor([[0, 2], [1, -1], [2, -1], [0, 1]])
        >>> model = build_conditional_model(
        ...     ModelConfig(kind="explicit", condition="item", dim=8, seed=1),
        ...     features=ItemFeatures(n_items=4, topics=topics), n_topics=3,
        ... )
        >>> type(model.association).__name__, model.dim, model.user_tower.crossing.n_fields
        ('ItemInterest', 8, 2)
    """
    _raise(_topic_problems(model, features, n_topics), "build_conditional_model")
    n_followed = n_topics if model.followed_topics else 0
    with _seeded(model.seed):
        crossing = _crossing(model, followed=n_followed > 0, summary=True)
        user_tower = UserTower(
            summariser=_summariser(model, features, n_topics),
            conditions=TopicConditions(n_topics=n_topics),
            crossing=crossing,
            summary=Summary(valid_only=True, init=init_summary_bounded),
            n_followed_topics=n_followed,
        )
        item_tower = ItemTower(summariser=_summariser(model, features, n_topics), out_dim=model.dim)
    condition: ItemInterest | SourceInterest = (
        ItemInterest(
            generator=torch.Generator().manual_seed(model.seed + 1),
            logged_only=model.condition_examples == "logged",
        )
        if model.condition == "item"
        else SourceInterest()
    )
    return ConditionalRetrievalModel(
        user_tower=user_tower,
        item_tower=item_tower,
        association=condition,
        features=features,
        temperature=model.temperature,
    )


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Parameters drawn from ``seed``, the caller's global RNG state left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _summariser(model: ModelConfig, features: ItemFeatures, n_topics: int) -> ItemSummariser:
    """An `ItemSummariser` to ``D = model.dim`` over the features the table has."""
    return ItemSummariser(
        n_items=features.n_items,
        id_dim=model.id_dim,
        hidden_dim=model.hidden_dim,
        out_dim=model.dim,
        inputs=SummaryInputs(
            use_item_id=model.use_item_id,
            n_topics=n_topics if features.topics is not None else 0,
            vector_dim=features.vector_dim,
            categorical_cardinalities=(
                features.categorical_cardinalities() if features.codes is not None else ()
            ),
        ),
    )


def _crossing(model: ModelConfig, *, followed: bool, summary: bool) -> DHEN:
    return DHEN(
        n_fields=n_user_fields(followed_topics=followed, summary=summary),
        out_dim=model.dim,
        sizes=PRESETS[model.dhen_preset],
    )


def _extractor(model: ModelConfig, features: ItemFeatures) -> InterestExtractor:
    """The extractor module of ``model.name`` over summaries of width ``model.dim``."""
    dim, k, name = model.dim, model.k, model.name
    generator = torch.Generator().manual_seed(model.seed)
    if name == "single":
        return SingleExtractor(dim=dim)
    if name == "mind":
        return CapsuleExtractor(dim=dim, k=k, generator=generator, iterations=model.iterations)
    if name == "dcm":
        return DCMExtractor(
            dim=dim,
            k=k,
            generator=generator,
            clustering=Clustering(
                iterations=model.dcm_iterations,
                validity_aware=model.validity_aware,
                init=model.dcm_init,
                routing=(
                    single_assignment_routing
                    if model.dcm_routing == "single_assignment"
                    else capsule_routing
                ),
                affinity=model.dcm_affinity,
                min_share=model.dcm_min_share,
                pool=model.dcm_pool,
                scale=model.dcm_scale,
            ),
        )
    if name == "self_attention":
        return SelfAttentionExtractor(dim=dim, k=k)
    if name == "interest_token":
        return InterestTokenExtractor(dim=dim, k=k)
    item_topics = _topics_from_vectors(features, model.pfs_topics, model.seed)
    return SubsequenceExtractor(dim=dim, k=k, item_topics=item_topics, n_topics=model.pfs_topics)


def _topics_from_vectors(features: ItemFeatures, n_topics: int, seed: int) -> Tensor:
    """Appendix B offline step: k-means over the present item vectors, nearest centroid."""
    assert features.vector is not None  # checked by _pfs_problems
    vectors = features.vector.detach().cpu().float().numpy()
    present = features.present_mask().cpu().numpy()
    centroids = kmeans_topics(vectors[present], n_topics, seed=seed)
    return torch.from_numpy(assign_topics(vectors, centroids, present))


def _raise(problems: list[str], source: str) -> None:
    if problems:
        raise ConfigError(problems, source=source)


def _feature_problems(features: ItemFeatures) -> list[str]:
    if not isinstance(features, ItemFeatures):
        return [f"features: must be an ItemFeatures, got {type(features).__name__}"]
    try:
        features.check()
    except ValueError as error:
        return [f"features: {error}"]
    return []


def _pfs_problems(model: ModelConfig, features: ItemFeatures) -> list[str]:
    """What ``pfs`` needs: ``k`` topics at most, and item vectors to cluster into them."""
    if model.name != "pfs":
        return []
    problems = []
    if model.k > model.pfs_topics:
        problems.append(f"k = {model.k}: must be <= pfs_topics = {model.pfs_topics} for pfs")
    if features.vector is None:
        problems.append("features.vector = None: pfs needs item vectors to cluster into topics")
    else:
        present = int(features.present_mask().sum())
        if present < model.pfs_topics:
            problems.append(
                f"pfs_topics = {model.pfs_topics}: must be <= the {present} items with a vector"
            )
    return problems


def _topic_problems(model: ModelConfig, features: ItemFeatures, n_topics: int) -> list[str]:
    """What Conditional Retrieval needs of the item table and the topic vocabulary."""
    problems = _feature_problems(features)
    features_ok = not problems
    if isinstance(n_topics, bool) or not (isinstance(n_topics, int) and n_topics >= 1):
        problems.append(f"n_topics = {n_topics!r}: must be an int >= 1")
    elif features_ok and features.n_topics() > n_topics:
        problems.append(
            f"n_topics = {n_topics}: must exceed every item topic (features.topics reach "
            f"{features.n_topics() - 1})"
        )
    if not features_ok:
        return problems
    if model.condition == "item" and features.n_topics() == 0:
        problems.append(
            "association = 'item': needs item topics to sample from, but features.topics "
            f"is {'None' if features.topics is None else 'empty'}"
        )
    if not model.use_item_id and (
        features.vector is None and features.codes is None and features.topics is None
    ):
        problems.append(
            "use_item_id = False: the items would have no feature (features has no vector, "
            "codes or topics)"
        )
    return problems
