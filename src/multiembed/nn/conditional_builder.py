"""Builder of the Conditional Retrieval model (explicit interests, Section 3.3).

`build_conditional_model` wires a `ConditionalRetrievalModel` from arguments: an
`ItemSummariser` for the history (Eq. 4), a DHEN crossing (Appendix A, preset
``small`` or ``paper``) over the condition, summary (and optionally followed-topic)
fields, an `ItemTower` with its own summariser, and the named condition association:

==========  ================  =========================================
name        class             the condition of a training example
==========  ================  =========================================
``source``  `SourceInterest`  the topic logged with the engagement
``item``    `ItemInterest`    a topic sampled from the engaged item's
==========  ================  =========================================
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

from multiembed.errors import ConfigError
from multiembed.nn.builders import PresetName
from multiembed.nn.conditional import (
    ConditionalRetrievalModel,
    ConditionalUserTower,
    ItemInterest,
    SourceInterest,
)
from multiembed.nn.dhen import DHEN
from multiembed.nn.dhen_sizes import PRESETS
from multiembed.nn.features import ItemFeatures
from multiembed.nn.item_tower import ItemTower
from multiembed.nn.summariser import ItemSummariser
from multiembed.nn.user_tower import n_user_fields

ConditionAssociationName = Literal["source", "item"]
CONDITION_ASSOCIATIONS: tuple[str, ...] = get_args(ConditionAssociationName)


def build_conditional_model(
    *,
    features: ItemFeatures,
    n_topics: int,
    association: ConditionAssociationName,
    condition_examples: Literal["all", "logged"] = "all",
    dim: int = 32,
    id_dim: int = 16,
    hidden_dim: int = 64,
    dhen_preset: PresetName = "small",
    temperature: float = 0.05,
    use_item_id: bool = True,
    followed_topics: bool = False,
    seed: int = 0,
) -> ConditionalRetrievalModel:
    """Build a Conditional Retrieval model.

    Args:
        features: the item feature table; the summarisers use its vector, categorical
            codes and topics, whichever are present.
        n_topics: the topic vocabulary: conditions, followed topics and item topics are
            ``0 .. n_topics - 1``.
        condition_examples: item interest only: train on every engagement whose item
            has a topic (``"all"``, Lin et al.'s bootstrap) or only on those with a
            logged condition (``"logged"``: the same engagements as source interest).
        association: ``"source"`` (`SourceInterest`, the paper's) or ``"item"``
            (`ItemInterest`, needs item topics).
        dim: width ``D`` of the user and item embeddings (and of the item summaries).
        id_dim: width of the summarisers' learned embeddings.
        hidden_dim: hidden width of the summarisers' GELU layer.
        dhen_preset: DHEN sizes, ``"small"`` (CPU minutes) or ``"paper"`` (Appendix A).
        temperature: the loss temperature.
        use_item_id: whether the summarisers embed the item id.
        followed_topics: whether the user tower reads the followed topics as a field.
        seed: seeds the parameter initialisation (the caller's global RNG state is left
            untouched) and `ItemInterest`'s generator.

    Returns:
        A `ConditionalRetrievalModel` in training mode.

    Raises:
        ConfigError: listing every bad argument as ``name = value: rule``.

    Example:
        >>> topics = torch.tensor([[0, 2], [1, -1], [2, -1], [0, 1]])
        >>> model = build_conditional_model(
        ...     features=ItemFeatures(n_items=4, topics=topics), n_topics=3, association="item",
        ...     dim=8, seed=1,
        ... )
        >>> type(model.association).__name__, model.dim, model.user_tower.crossing.n_fields
        ('ItemInterest', 8, 2)
    """
    problems = _problems(
        features=features,
        n_topics=n_topics,
        association=association,
        sizes={"dim": dim, "id_dim": id_dim, "hidden_dim": hidden_dim},
        dhen_preset=dhen_preset,
        temperature=temperature,
        flags={"use_item_id": use_item_id, "followed_topics": followed_topics},
        seed=seed,
    )
    if problems:
        raise ConfigError(problems, source="build_conditional_model")

    def summariser() -> ItemSummariser:
        return ItemSummariser(
            n_items=features.n_items,
            id_dim=id_dim,
            hidden_dim=hidden_dim,
            out_dim=dim,
            n_topics=n_topics if features.topics is not None else 0,
            vector_dim=features.vector_dim,
            categorical_cardinalities=(
                features.categorical_cardinalities() if features.codes is not None else ()
            ),
            use_item_id=use_item_id,
        )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        crossing = DHEN(
            n_fields=n_user_fields(followed_topics=followed_topics),
            out_dim=dim,
            **PRESETS[dhen_preset].as_kwargs(),
        )
        user_tower = ConditionalUserTower(
            summariser=summariser(),
            crossing=crossing,
            n_topics=n_topics,
            followed_topics=followed_topics,
        )
        item_tower = ItemTower(summariser=summariser(), out_dim=dim)
    strategy: ItemInterest | SourceInterest = (
        ItemInterest(
            generator=torch.Generator().manual_seed(seed + 1),
            logged_only=condition_examples == "logged",
        )
        if association == "item"
        else SourceInterest()
    )
    return ConditionalRetrievalModel(
        user_tower=user_tower,
        item_tower=item_tower,
        association=strategy,
        features=features,
        temperature=temperature,
    )


def _problems(
    *,
    features: ItemFeatures,
    n_topics: int,
    association: str,
    sizes: dict[str, int],
    dhen_preset: str,
    temperature: float,
    flags: dict[str, bool],
    seed: int,
) -> list[str]:
    """Every rule the arguments of `build_conditional_model` break, as ``name = value: rule``."""

    def bad_int(value: object, minimum: int) -> bool:
        return isinstance(value, bool) or not isinstance(value, int) or value < minimum

    problems: list[str] = []
    features_ok = False
    if not isinstance(features, ItemFeatures):
        problems.append(f"features: must be an ItemFeatures, got {type(features).__name__}")
    else:
        try:
            features.check()
            features_ok = True
        except ValueError as error:
            problems.append(f"features: {error}")
    if bad_int(n_topics, 1):
        problems.append(f"n_topics = {n_topics!r}: must be an int >= 1")
    elif features_ok and features.n_topics() > n_topics:
        problems.append(
            f"n_topics = {n_topics}: must exceed every item topic (features.topics reach "
            f"{features.n_topics() - 1})"
        )
    if association not in CONDITION_ASSOCIATIONS:
        problems.append(
            f"association = {association!r}: must be one of {list(CONDITION_ASSOCIATIONS)}"
        )
    elif association == "item" and features_ok and features.n_topics() == 0:
        problems.append(
            "association = 'item': needs item topics to sample from, but features.topics "
            f"is {'None' if features.topics is None else 'empty'}"
        )
    problems += [f"{key} = {v!r}: must be an int >= 1" for key, v in sizes.items() if bad_int(v, 1)]
    if dhen_preset not in PRESETS:
        problems.append(f"dhen_preset = {dhen_preset!r}: must be one of {list(PRESETS)}")
    if isinstance(temperature, bool) or not (
        isinstance(temperature, int | float) and 0 < temperature < math.inf
    ):
        problems.append(f"temperature = {temperature!r}: must be > 0 and finite")
    problems += [
        f"{key} = {v!r}: must be a bool" for key, v in flags.items() if not isinstance(v, bool)
    ]
    if bad_int(seed, 0):
        problems.append(f"seed = {seed!r}: must be an int >= 0")
    if (
        features_ok
        and flags["use_item_id"] is False
        and features.vector is None
        and features.codes is None
        and features.topics is None
    ):
        problems.append(
            "use_item_id = False: the items would have no feature (features has no vector, "
            "codes or topics)"
        )
    return problems
