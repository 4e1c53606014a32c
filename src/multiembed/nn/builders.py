"""Builders: read config-like arguments, wire modules. The one place names map to classes.

`build_model` assembles a `RetrievalModel` for one of the implicit-interest models
compared in the paper (Table 1):

=================  ==========================  ==================
name               extractor                   default association
=================  ==========================  ==================
``single``         `SingleExtractor` (K = 1)   arg-max
``mind``           `CapsuleExtractor`          arg-max
``dcm``            `DCMExtractor`              arg-max
``self_attention`` `SelfAttentionExtractor`    Gumbel
``interest_token`` `InterestTokenExtractor`    Gumbel
``pfs``            `SubsequenceExtractor`      arg-max
=================  ==========================  ==================

Every model gets the same parts around its extractor: an `ItemSummariser` for the
history (Eq. 4), a DHEN crossing (Appendix A, preset ``small`` or ``paper``), an
`ItemTower` with its own summariser, and the Eq. 9 loss.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from multiembed.errors import ConfigError
from multiembed.nn.association import ArgmaxAssociation, GumbelAssociation
from multiembed.nn.dhen import DHEN
from multiembed.nn.dhen_sizes import PRESETS
from multiembed.nn.extractors import (
    CapsuleExtractor,
    DCMExtractor,
    InitName,
    InterestExtractor,
    InterestTokenExtractor,
    SelfAttentionExtractor,
    SingleExtractor,
    SubsequenceExtractor,
    assign_topics,
    kmeans_topics,
)
from multiembed.nn.features import ItemFeatures
from multiembed.nn.functional import Affinity, capsule_routing, single_assignment_routing
from multiembed.nn.item_tower import ItemTower
from multiembed.nn.retrieval import RetrievalModel, Scoring
from multiembed.nn.summariser import ItemSummariser
from multiembed.nn.user_tower import MultiInterestUserTower, n_user_fields

ModelName = Literal["single", "mind", "dcm", "self_attention", "interest_token", "pfs"]
AssociationName = Literal["argmax", "gumbel"]
RoutingName = Literal["single_assignment", "vanilla"]
PresetName = Literal["small", "paper"]
SummaryName = Literal["attention", "mean", "none"]

MODEL_NAMES: tuple[str, ...] = get_args(ModelName)
_GUMBEL_BY_DEFAULT = ("self_attention", "interest_token")


def build_model(
    name: ModelName,
    *,
    features: ItemFeatures,
    k: int = 4,
    dim: int = 32,
    id_dim: int = 16,
    hidden_dim: int = 64,
    summary_dim: int | None = None,
    association: AssociationName | None = None,
    tau: float = 1.0,
    iterations: int = 3,
    validity_aware: bool = True,
    dcm_routing: RoutingName = "single_assignment",
    dcm_min_share: float = 0.0,
    dcm_recency: float = 0.0,
    dcm_init: InitName = "farthest_point",
    dcm_affinity: Affinity = "dot",
    pfs_topics: int = 32,
    pfs_item_topics: np.ndarray | Tensor | None = None,
    dhen_preset: PresetName = "small",
    temperature: float = 0.05,
    n_followed_topics: int = 0,
    categorical_cardinalities: tuple[int, ...] | None = None,
    n_item_topics: int | None = None,
    use_item_id: bool = True,
    user_summary: SummaryName = "attention",
    scoring: Scoring = "associated",
    share_items: bool = False,
    residual_weight: float = 0.5,
    global_interest: bool = False,
    summary_global_only: bool = False,
    seed: int = 0,
) -> RetrievalModel:
    """Build a retrieval model by name.

    Args:
        name: which extractor (see the module table).
        features: the item feature table; the summarisers use its vector, categorical
            codes and topics, whichever are present.
        k: number of interests ``K`` (paper: 7); ``single`` always has 1.
        dim: width ``D`` of the user and item embeddings.
        id_dim: width of the summarisers' learned embeddings.
        hidden_dim: hidden width of the summarisers' GELU layer.
        summary_dim: width ``D_e`` of the item summaries e_i (default ``dim``).
        association: ``"argmax"`` (Eq. 8) or ``"gumbel"`` (straight-through); None picks
            the paper's: Gumbel for ``self_attention`` and ``interest_token``, arg-max
            otherwise.
        tau: Gumbel-softmax temperature (the affinities it perturbs are on the loss's
            logit scale, cosine / ``temperature``).
        iterations: routing rounds for ``mind`` and ``dcm``.
        validity_aware: DCM's Eq. 6 masking (``dcm`` only).
        dcm_routing: ``"single_assignment"`` (Eq. 7) or ``"vanilla"`` (Eq. 1) for ``dcm``.
        dcm_init: ``"farthest_point"`` (Eq. 5) or MIND's ``"gaussian"`` centroids, where
            ``dcm``'s routing starts (Table 6's rows without VA-FPI).
        dcm_min_share: ``dcm`` drops clusters holding less than this share of the
            routed mass (`DCMExtractor`'s ``min_share``); 0 keeps all (the paper).
        dcm_recency: ``dcm`` centroids weight their items by exp(-rank / dcm_recency)
            (`DCMExtractor`'s ``recency``); 0 weights them alike (the paper).
        dcm_affinity: ``"dot"`` (Eq. 7 as written) or ``"cosine"``: how ``dcm``'s
            routing reads an item's affinity to a centroid (`DCMExtractor`'s ``affinity``).
        pfs_topics: number of k-means topics for ``pfs`` (paper: 32), at least ``k``.
        pfs_item_topics: ``[n_items]`` precomputed topic per item (``-1``: none) for
            ``pfs``; None computes them by k-means over ``features.vector``.
        dhen_preset: DHEN sizes, ``"small"`` (CPU minutes) or ``"paper"`` (Appendix A).
        temperature: the loss temperature.
        n_followed_topics: followed-topic vocabulary; 0 leaves that field out.
        categorical_cardinalities: per categorical column; None infers max code + 1.
        n_item_topics: item topic vocabulary; None infers max topic + 1.
        use_item_id: whether the summarisers embed the item id.
        user_summary: the user tower's whole-sequence field: ``"attention"``, the
            recency-aware attention pooling of `SingleExtractor` (every model then knows
            what the user engaged with last, as the single baseline does), or
            ``"mean"``, the plain masked mean, or ``"none"``: no summary field, each
            embedding crossed from its own condition only.
        scoring: `RetrievalModel`'s ``scoring``: ``"associated"`` (Eq. 9 as in the paper)
            or ``"max"`` (each in-batch item scored by the user's best embedding).
        share_items: one `ItemSummariser` for the history and the item tower (the same
            item-id table on both sides), and each condition mapped into the item space
            by the item tower's ``proj`` with the crossing as a residual
            (`MultiInterestUserTower`'s ``condition_out``); False gives each tower its
            own summariser and the crossing alone (the paper's Figure 3).
        residual_weight: with ``share_items``, the weight of the unit crossing added to
            each unit condition (`MultiInterestUserTower`'s ``residual_weight``).
        global_interest: every model but ``single`` gets one more embedding, the
            whole-history query (`MultiInterestUserTower`'s ``global_slot``); ``k``
            then counts it.
        summary_global_only: with ``global_interest`` and a ``user_summary``, the summary
            field reaches the whole-history slot only (`MultiInterestUserTower`'s
            ``summary_global_only``); otherwise it has no effect.
        seed: seeds the parameter initialisation (the caller's global RNG state is left
            untouched), the extractor's generator and the association's generator.

    Returns:
        A `RetrievalModel` in training mode.

    Raises:
        ConfigError: listing every bad argument as ``name = value: rule``.

    Example:
        >>> features = ItemFeatures(n_items=50, vector=torch.randn(50, 4))
        >>> model = build_model("mind", features=features, k=3, dim=8, hidden_dim=16)
        >>> model.k, model.dim, type(model.user_tower.extractor).__name__
        (3, 8, 'CapsuleExtractor')
    """
    problems = _problems(
        name=name,
        features=features,
        k=k,
        sizes={"dim": dim, "id_dim": id_dim, "hidden_dim": hidden_dim, "iterations": iterations},
        summary_dim=summary_dim,
        association=association,
        dcm_routing=dcm_routing,
        pfs_topics=pfs_topics,
        pfs_item_topics=pfs_item_topics,
        dhen_preset=dhen_preset,
        n_followed_topics=n_followed_topics,
        floats={"tau": tau, "temperature": temperature},
    )
    if scoring not in get_args(Scoring):
        problems.append(f"scoring = {scoring!r}: must be one of {list(get_args(Scoring))}")
    if dcm_init not in get_args(InitName):
        problems.append(f"dcm_init = {dcm_init!r}: must be one of {list(get_args(InitName))}")
    if user_summary not in get_args(SummaryName):
        problems.append(
            f"user_summary = {user_summary!r}: must be one of {list(get_args(SummaryName))}"
        )
    if problems:
        raise ConfigError(problems, source="build_model")
    summary = dim if summary_dim is None else summary_dim
    chosen_association = association or ("gumbel" if name in _GUMBEL_BY_DEFAULT else "argmax")
    cardinalities = (
        features.categorical_cardinalities()
        if categorical_cardinalities is None
        else tuple(categorical_cardinalities)
    )
    item_topic_count = features.n_topics() if n_item_topics is None else n_item_topics

    def summariser(out_dim: int) -> ItemSummariser:
        return ItemSummariser(
            n_items=features.n_items,
            id_dim=id_dim,
            hidden_dim=hidden_dim,
            out_dim=out_dim,
            n_topics=item_topic_count if features.topics is not None else 0,
            vector_dim=features.vector_dim,
            categorical_cardinalities=cardinalities if features.codes is not None else (),
            use_item_id=use_item_id,
        )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        extractor = _extractor(
            name,
            features=features,
            k=k,
            dim=summary,
            iterations=iterations,
            validity_aware=validity_aware,
            dcm_routing=dcm_routing,
            dcm_min_share=dcm_min_share,
            dcm_recency=dcm_recency,
            dcm_init=dcm_init,
            dcm_affinity=dcm_affinity,
            pfs_topics=pfs_topics,
            pfs_item_topics=pfs_item_topics,
            generator=torch.Generator().manual_seed(seed),
            seed=seed,
        )
        crossing = DHEN(
            n_fields=n_user_fields(
                followed_topics=n_followed_topics > 0, summary=user_summary != "none"
            ),
            out_dim=dim,
            **PRESETS[dhen_preset].as_kwargs(),
        )
        history_summariser = summariser(summary)
        item_tower = ItemTower(
            summariser=history_summariser if share_items else summariser(summary), out_dim=dim
        )
        user_tower = MultiInterestUserTower(
            summariser=history_summariser,
            extractor=extractor,
            crossing=crossing,
            n_followed_topics=n_followed_topics,
            summary_pool=SingleExtractor(dim=summary) if user_summary == "attention" else None,
            condition_out=item_tower.proj if share_items else None,
            summary=user_summary != "none",
            residual_weight=residual_weight,
            global_slot=global_interest and name != "single",
            summary_global_only=(
                summary_global_only
                and global_interest
                and user_summary != "none"
                and name != "single"
            ),
        )
    strategy: nn.Module = (
        GumbelAssociation(
            tau=tau,
            generator=torch.Generator().manual_seed(seed + 1),
            logit_scale=1.0 / temperature,
        )
        if chosen_association == "gumbel"
        else ArgmaxAssociation()
    )
    return RetrievalModel(
        user_tower=user_tower,
        item_tower=item_tower,
        association=strategy,
        features=features,
        temperature=temperature,
        scoring=scoring,
    )


def _extractor(
    name: str,
    *,
    features: ItemFeatures,
    k: int,
    dim: int,
    iterations: int,
    validity_aware: bool,
    dcm_routing: str,
    dcm_min_share: float,
    dcm_recency: float,
    dcm_init: InitName,
    dcm_affinity: Affinity,
    pfs_topics: int,
    pfs_item_topics: np.ndarray | Tensor | None,
    generator: torch.Generator,
    seed: int,
) -> InterestExtractor:
    """The extractor module for a model name (arguments already checked)."""
    if name == "single":
        return SingleExtractor(dim=dim)
    if name == "mind":
        return CapsuleExtractor(dim=dim, k=k, generator=generator, iterations=iterations)
    if name == "dcm":
        routing = (
            single_assignment_routing if dcm_routing == "single_assignment" else capsule_routing
        )
        return DCMExtractor(
            dim=dim,
            k=k,
            generator=generator,
            iterations=iterations,
            validity_aware=validity_aware,
            routing=routing,
            min_share=dcm_min_share,
            recency=dcm_recency,
            init=dcm_init,
            affinity=dcm_affinity,
        )
    if name == "self_attention":
        return SelfAttentionExtractor(dim=dim, k=k)
    if name == "interest_token":
        return InterestTokenExtractor(dim=dim, k=k)
    item_topics = (
        _topics_from_vectors(features, pfs_topics, seed)
        if pfs_item_topics is None
        else torch.as_tensor(pfs_item_topics, dtype=torch.int64)
    )
    return SubsequenceExtractor(dim=dim, k=k, item_topics=item_topics, n_topics=pfs_topics)


def _topics_from_vectors(features: ItemFeatures, n_topics: int, seed: int) -> Tensor:
    """Appendix B offline step: k-means over the present item vectors, nearest centroid."""
    if features.vector is None:
        raise ValueError("pfs topics: expected features.vector, got None")
    vectors = features.vector.detach().cpu().float().numpy()
    present = (
        np.ones(features.n_items, dtype=bool)
        if features.vector_present is None
        else features.vector_present.cpu().numpy()
    )
    centroids = kmeans_topics(vectors[present], n_topics, seed=seed)
    return torch.from_numpy(assign_topics(vectors, centroids, present))


def _problems(
    *,
    name: str,
    features: ItemFeatures,
    k: int,
    sizes: dict[str, int],
    summary_dim: int | None,
    association: str | None,
    dcm_routing: str,
    pfs_topics: int,
    pfs_item_topics: np.ndarray | Tensor | None,
    dhen_preset: str,
    n_followed_topics: int,
    floats: dict[str, float],
) -> list[str]:
    """Every rule the arguments of `build_model` break, as ``name = value: rule``."""

    def bad_int(value: object, minimum: int) -> bool:
        return isinstance(value, bool) or not isinstance(value, int) or value < minimum

    problems: list[str] = []
    if name not in MODEL_NAMES:
        problems.append(f"name = {name!r}: must be one of {list(MODEL_NAMES)}")
    if not isinstance(features, ItemFeatures):
        problems.append(f"features: must be an ItemFeatures, got {type(features).__name__}")
    else:
        try:
            features.check()
        except ValueError as error:
            problems.append(f"features: {error}")
    if bad_int(k, 1):
        problems.append(f"k = {k!r}: must be an int >= 1")
    problems += [f"{key} = {v!r}: must be an int >= 1" for key, v in sizes.items() if bad_int(v, 1)]
    problems += [
        f"{key} = {v!r}: must be > 0 and finite"
        for key, v in floats.items()
        if isinstance(v, bool) or not (isinstance(v, int | float) and 0 < v < math.inf)
    ]
    if summary_dim is not None and bad_int(summary_dim, 1):
        problems.append(f"summary_dim = {summary_dim!r}: must be an int >= 1 or None")
    if association is not None and association not in get_args(AssociationName):
        problems.append(
            f"association = {association!r}: must be one of {list(get_args(AssociationName))}"
        )
    if dcm_routing not in get_args(RoutingName):
        problems.append(
            f"dcm_routing = {dcm_routing!r}: must be one of {list(get_args(RoutingName))}"
        )
    if dhen_preset not in PRESETS:
        problems.append(f"dhen_preset = {dhen_preset!r}: must be one of {list(PRESETS)}")
    if bad_int(n_followed_topics, 0):
        problems.append(f"n_followed_topics = {n_followed_topics!r}: must be an int >= 0")
    if name == "pfs":
        if bad_int(pfs_topics, 1):
            problems.append(f"pfs_topics = {pfs_topics!r}: must be an int >= 1")
        elif not bad_int(k, 1) and k > pfs_topics:
            problems.append(f"k = {k}: must be <= pfs_topics = {pfs_topics} for pfs")
        if pfs_item_topics is None and isinstance(features, ItemFeatures):
            if features.vector is None:
                problems.append(
                    "features.vector = None: pfs needs item vectors to cluster into topics "
                    "(or pass pfs_item_topics)"
                )
            elif not bad_int(pfs_topics, 1):
                present = (
                    features.n_items
                    if features.vector_present is None
                    else int(features.vector_present.sum())
                )
                if present < pfs_topics:
                    problems.append(
                        f"pfs_topics = {pfs_topics}: must be <= the {present} items with a vector"
                    )
    return problems
