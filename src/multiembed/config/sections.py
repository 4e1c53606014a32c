"""Config sections of the data layer: validation, the synthetic world, splits, examples.

Each section is a frozen keyword-only dataclass; its `_section` name is the
TOML table it is read from. `Config`, the root, holds one of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from multiembed.config._check import (
    Cross,
    all_non_negative,
    all_positive,
    at_most,
    between,
    non_empty,
    non_negative,
    positive,
    setting,
)
from multiembed.config._core import Section

# Ceilings of sizes that the library allocates arrays for: far above any use,
# far below what would exhaust a machine's memory or run for hours unasked.
MAX_DAYS = 36_500
"""Spans in days: a century."""
MAX_ROWS = 100_000_000
"""Rows held at once (streamed batches, synthetic users)."""
MAX_ITEMS = 10_000_000
"""Synthetic items: their vectors are generated in memory."""
MAX_SUBTOPICS = 10_000
"""Synthetic n_topics * subtopics_per_topic: each block of users draws a [2000, S] array."""
MAX_WIDTH = 4_096
"""Sequence length, embedding and table widths, vector dimensions."""
MAX_SLOTS = 1_024
"""Interests, topics and routing rounds per user."""
MAX_BATCH = 65_536
"""Training batch: in-batch softmax holds a [B, B] score matrix."""
MAX_BUDGET = 100_000
"""Candidates of one served list."""


@dataclass(frozen=True, kw_only=True)
class DataConfig(Section):
    """How raw input is validated when prepared into canonical tables."""

    _section: ClassVar[str] = "data"

    ts_fence: float = setting(
        1.5,
        positive,
        at_most(100),
        doc="timestamps beyond quartiles -/+ this many interquartile ranges are far outside",
    )
    min_span_margin_days: float = setting(
        1.0, non_negative, at_most(MAX_DAYS), doc="the fences are never closer than this many days"
    )
    rating_threshold: float = setting(
        0.0, doc="MovieLens: ratings at or above are positive ('rate'), below negative"
    )
    batch_rows: int = setting(1_000_000, positive, at_most(MAX_ROWS), doc="rows per streamed batch")


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig(Section):
    """The built-in synthetic world: users with known interests and a logging policy."""

    _section: ClassVar[str] = "synthetic"

    seed: int = setting(0, non_negative, doc="seed of the generated world")
    n_users: int = setting(3000, positive, at_most(MAX_ROWS), doc="users of the world")
    n_items: int = setting(20000, positive, at_most(MAX_ITEMS), doc="items of the world")
    n_topics: int = setting(24, positive, at_most(MAX_SUBTOPICS), doc="top-level topics")
    subtopics_per_topic: int = setting(
        4, positive, at_most(MAX_SUBTOPICS), doc="sub-topics (the true interests) of each topic"
    )
    days: int = setting(
        15, positive, at_most(MAX_DAYS), doc="days of engagements (paper: 14 + 1, Section 4.1.1)"
    )
    engagements_per_day: float = setting(
        4.0, positive, at_most(1_000), doc="mean daily engagements of an average active user"
    )
    interests_min: int = setting(2, positive, doc="fewest true interests of a user")
    interests_max: int = setting(6, positive, doc="most true interests of a user")
    long_term_share: float = setting(
        0.3, between(0.0, 1.0), doc="share of users with a followed interest absent from history"
    )
    new_user_share: float = setting(
        0.05, between(0.0, 1.0), doc="share of new users (few engagements)"
    )
    low_activity_share: float = setting(0.25, between(0.0, 1.0), doc="share of low-activity users")
    vector_dim: int = setting(
        32, positive, at_most(MAX_WIDTH), doc="width of the items' pretrained vectors"
    )
    vector_noise: float = setting(
        0.35, non_negative, doc="noise scale of a pretrained vector around its sub-topic"
    )
    invalid_item_share: float = setting(
        0.03, between(0.0, 1.0), doc="share of items missing required features (Eq. 6)"
    )
    negative_action_share: float = setting(
        0.05, between(0.0, 1.0), doc="share of engagements that are negative actions (hide)"
    )
    legacy_share: float = setting(
        0.3, between(0.0, 1.0), doc="share of impressions from the topic inverted-index retriever"
    )
    start_ts: int = setting(
        1_700_000_000, non_negative, at_most(10_000_000_000), doc="seconds (at most year 2286)"
    )

    _cross: ClassVar[tuple[Cross, ...]] = (
        Cross(
            ("interests_min", "interests_max"),
            lambda lo, hi: None if lo <= hi else f"must be <= synthetic.interests_max ({hi})",
            "<= interests_max",
        ),
        Cross(
            ("n_topics", "subtopics_per_topic"),
            lambda t, s: (
                None
                if t * s <= MAX_SUBTOPICS
                else f"n_topics * subtopics_per_topic ({t * s}) must be <= {MAX_SUBTOPICS:_}"
            ),
            f"n_topics * subtopics_per_topic <= {MAX_SUBTOPICS:_}",
        ),
        Cross(
            ("n_items", "n_topics", "subtopics_per_topic"),
            lambda n, t, s: (
                None
                if n >= t * s
                else f"must be >= n_topics * subtopics_per_topic ({t * s}) so that every "
                "sub-topic has an item"
            ),
            ">= n_topics * subtopics_per_topic",
        ),
        Cross(
            ("interests_max", "n_topics", "subtopics_per_topic"),
            lambda k, t, s: (
                None if k <= t * s else f"must be <= the number of sub-topics ({t * s})"
            ),
            "<= n_topics * subtopics_per_topic",
        ),
    )


@dataclass(frozen=True, kw_only=True)
class SplitConfig(Section):
    """How prepared data is split into training and evaluation."""

    _section: ClassVar[str] = "split"

    protocol: Literal["users", "comirec", "time"] = setting(
        "users",
        doc="users: hold out valid_share + test_share of the users, whose last events are "
        "validation and test targets, and train on every other event (any log, any span); "
        "comirec: the same, but held-out users are never trained on; time: the paper's "
        "train_days + eval_days window at the end of the log",
    )
    train_days: float = setting(
        14.0, positive, at_most(MAX_DAYS), doc="time protocol: training window length"
    )
    eval_days: float = setting(
        1.0, positive, at_most(MAX_DAYS), doc="time protocol: evaluation window length"
    )
    seed: int = setting(0, non_negative, doc="seed of the user shuffle that picks held-out users")
    valid_share: float = setting(
        0.1, between(0.0, 0.5), doc="share of users held out to validate (model selection)"
    )
    test_share: float = setting(
        0.1, between(0.0, 0.5), doc="share of users held out for `evaluate`"
    )
    history_share: float = setting(
        0.8,
        between(0.05, 0.95),
        doc="users, comirec: share of a held-out user's events used as history",
    )
    allow_small_train: bool = setting(
        False,
        doc="train even when the split keeps under half of the positive engagements as "
        "training targets (otherwise `train` stops and says so)",
    )

    _cross: ClassVar[tuple[Cross, ...]] = (
        Cross(
            ("test_share", "valid_share"),
            lambda test, valid: (
                None
                if valid + test < 1.0
                else f"must be < 1 - split.valid_share ({valid}): no user would be left to train on"
            ),
            "< 1 - valid_share",
        ),
    )


@dataclass(frozen=True, kw_only=True)
class ExamplesConfig(Section):
    """Training examples: sequence length and followed-topic slots."""

    _section: ClassVar[str] = "examples"

    seq_len: int = setting(50, positive, at_most(MAX_WIDTH), doc="L: engagements before the target")
    max_topics: int = setting(
        8, positive, at_most(MAX_SLOTS), doc="followed topics kept per example"
    )


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Section):
    """Which retrieval model and its sizes (what `nn.builders.build_model` reads)."""

    _section: ClassVar[str] = "model"

    name: Literal["single", "mind", "dcm", "self_attention", "interest_token", "pfs"] = setting(
        "dcm", doc="implicit: the interest extractor"
    )
    k: int = setting(4, positive, at_most(MAX_SLOTS), doc="K_im: implicit interests (paper: 7)")
    dim: int = setting(32, positive, at_most(MAX_WIDTH), doc="D: width of user and item embeddings")
    id_dim: int = setting(
        16, positive, at_most(MAX_WIDTH), doc="width of learned item-id and categorical embeddings"
    )
    hidden_dim: int = setting(
        64, positive, at_most(4 * MAX_WIDTH), doc="hidden width of the GELU summariser (Eq. 4)"
    )
    association: Literal["auto", "argmax", "gumbel"] = setting(
        "auto",
        doc="auto: Gumbel for self_attention/interest_token, argmax otherwise. It picks the "
        "embedding that scores each positive in Eq. 9 (with scoring = 'associated' the "
        "negatives too): under scoring = 'max' argmax picks the best embedding and "
        "Gumbel a straight-through sample (Section 3.2.4)",
    )
    tau: float = setting(1.0, positive, doc="Gumbel-softmax temperature")
    iterations: int = setting(3, positive, at_most(MAX_SLOTS), doc="mind: routing rounds")
    validity_aware: bool = setting(True, doc="dcm: validity-aware FPI (Eq. 6)")
    dcm_init: Literal["farthest_point", "gaussian"] = setting(
        "farthest_point",
        doc="dcm: where routing starts, farthest-point seeds (Eq. 5) or MIND's Gaussian "
        "centroids (Table 6's rows without VA-FPI)",
    )
    dcm_iterations: int = setting(
        1,
        positive,
        at_most(MAX_SLOTS),
        doc="dcm: routing rounds from the seeds; where one embedding is served "
        "(train.select_interests) one is as good as three on the public splits and makes a "
        "training step about 6 % cheaper; to serve K as trained, use three, which keep the "
        "clusters apart (README, 'Defaults on public logs')",
    )
    dcm_routing: Literal["single_assignment", "vanilla"] = setting(
        "single_assignment", doc="dcm: single-assignment routing (Eq. 7) or vanilla (Eq. 1)"
    )
    dcm_min_share: float = setting(
        0.05,
        between(0.0, 0.99),
        doc="dcm: drop clusters holding less than this share of the routed items (outlier "
        "seeds); 0 keeps all, as in the paper",
    )
    dcm_pool: Literal["mean", "attention"] = setting(
        "attention",
        doc="dcm: a centroid weights each of its items by the learned recency-aware "
        "attention of the single model ('attention'), so a user whose items form one "
        "cluster gets the single model's query; or is the routed sum of its items ('mean', "
        "Eq. 2, the paper)",
    )
    dcm_scale: Literal["mass", "items"] = setting(
        "items",
        doc="dcm: a condition is its cluster's weighted mean, at its items' scale ('items'), "
        "so a small cluster's embedding sits where its items do (the mass still sets the "
        "importance); or its squashed routed sum, whose length grows with the cluster's "
        "mass ('mass', Eq. 2-3, the paper), so small clusters all come out near the next "
        "layer's bias",
    )
    dcm_affinity: Literal["dot", "cosine"] = setting(
        "dot",
        doc="dcm: routing reads an item's affinity to a centroid as c^T e ('dot', Eq. 7 as "
        "written) or against the centroid's direction only ('cosine'), so a heavy cluster "
        "does not take every item",
    )
    pfs_topics: int = setting(
        32, positive, at_most(MAX_WIDTH), doc="pfs: k-means topics of the subsequences (paper: 32)"
    )
    dhen_preset: Literal["small", "paper"] = setting(
        "small",
        doc="DHEN crossing sizes: small (CPU minutes) or paper (Appendix A: 256-dim "
        "transformer, 1024-wide MLPs)",
    )
    temperature: float = setting(
        0.2,
        positive,
        doc="softmax temperature of Eq. 9 (cosine / temperature); 0.05 overfits small public logs",
    )
    use_item_id: bool = setting(True, doc="the summarisers embed the item id")
    user_summary: Literal["attention", "mean", "none"] = setting(
        "attention",
        doc="the user tower's whole-sequence field: recency-aware attention pooling, or the "
        "plain mean of the history",
    )
    scoring: Literal["associated", "max"] = setting(
        "max",
        doc="Eq. 9 negatives: each scored by the user's best embedding, the score retrieval "
        "and HR@K rank by (default), or by the associated embedding (the paper's Eq. 9)",
    )
    history_negatives: Literal["keep", "drop", "auto"] = setting(
        "auto",
        doc="implicit models' Eq. 9: an in-batch item in the example's own history stays a "
        "negative ('keep', the plain in-batch softmax) or leaves that row's softmax ('drop'); "
        "'auto' drops it while the model trains one embedding per user (single; DCM once "
        "train.select_interests chose one) and keeps it while it trains K",
    )
    share_items: bool = setting(
        True,
        doc="one item summariser (item-id table) for history and item tower, each interest "
        "placed in the item space with the crossing as a residual: keeps a user's "
        "interests apart; false: separate towers, crossing only (the paper's Figure 3)",
    )
    residual_weight: float = setting(
        0.5,
        between(0.0, 10.0),
        doc="share_items: length of the unit crossing added to each unit condition; below "
        "1 the condition dominates and a user's embeddings keep its clusters' spread",
    )
    global_interest: bool = setting(
        False,
        doc="every model but single gets one more embedding beside its K interests: the "
        "whole-history query of the single-embedding model (k then counts K + 1). On the "
        "shared public splits it helped MovieLens-small, cost a third of Recall@50 on the "
        "Taobao head and raised the interest cosine everywhere",
    )
    summary_global_only: bool = setting(
        False,
        doc="with global_interest (and a user_summary): the whole-sequence summary field "
        "reaches the whole-history embedding only, so each cluster's embedding depends on "
        "its own cluster; false, or without global_interest: every embedding gets it, "
        "which pulls them together",
    )
    followed_topics: bool = setting(False, doc="feed followed topics to the user tower")
    seed: int = setting(
        0, non_negative, doc="seed of the initial weights and of routing and Gumbel noise"
    )
    kind: Literal["implicit", "explicit"] = setting(
        "implicit",
        doc="implicit: multi-interest model `name` (Section 3.2); explicit: Conditional "
        "Retrieval over topics (Section 3.3), association `condition`",
    )
    condition_examples: Literal["all", "logged"] = setting(
        "all",
        doc="explicit, item condition: train on every engagement (all) or only on those "
        "with a logged condition, the same data as source interest (logged)",
    )
    condition: Literal["source", "item"] = setting(
        "source",
        doc="explicit: the topic logged with the engagement (source) or one sampled from "
        "the engaged item's topics (item, Lin et al.)",
    )


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Section):
    """The training loop."""

    _section: ClassVar[str] = "train"

    epochs: int = setting(
        30,
        positive,
        doc="at most this many passes over the training examples; early stopping "
        "(train.patience) usually ends the run sooner",
    )
    batch_size: int = setting(
        512, positive, at_most(MAX_BATCH), doc="examples per step; the in-batch negatives of Eq. 9"
    )
    lr: float = setting(1e-3, positive, doc="AdamW learning rate")
    weight_decay: float = setting(1e-4, non_negative, doc="AdamW weight decay")
    grad_clip: float = setting(1.0, positive, doc="gradients are clipped to this norm")
    seed: int = setting(0, non_negative, doc="seed of the example order and the global generators")
    freq_buckets: int = setting(
        1 << 20, positive, at_most(1 << 28), doc="streaming frequency estimator size"
    )
    freq_alpha: float = setting(
        0.05, between(1e-6, 1.0), doc="streaming frequency estimator's moving-average rate"
    )
    checkpoint_every: int = setting(200, positive, doc="steps between checkpoints")
    log_every: int = setting(20, positive, doc="steps between lines of metrics.jsonl")
    max_steps: int = setting(0, non_negative, doc="stop after this many steps (0: no limit)")
    threads: int = setting(
        1,
        non_negative,
        at_most(MAX_SLOTS),
        doc="torch intra-op threads (0: torch default). Small CPU batches gain little from "
        "more threads and lose 10x when another process competes for the cores",
    )
    validation: bool = setting(
        True,
        doc="validate on the held-out validation users (split.valid_share) at each epoch's "
        "end: HR@K of the current model, logged to metrics.jsonl, for model selection",
    )
    validate_every: int = setting(
        0,
        non_negative,
        doc="also validate every this many steps (0: only at epoch ends). Each validation "
        "embeds and ranks the eval corpus: about 5 s with a 1M-item corpus on a CPU",
    )
    validation_records: int = setting(
        2000,
        positive,
        doc="evaluation records of the validation slice (whole users, a fixed seeded choice)",
    )
    patience: int = setting(
        3,
        non_negative,
        doc="stop after this many validations in a row without a better HR@K (0: run every epoch)",
    )
    keep: Literal["best", "last"] = setting(
        "best",
        doc="the run's weights: those of the best validation (best) or of the last step",
    )
    select_interests: bool = setting(
        True,
        doc="after training, serve one embedding per user (DCM with K = 1: the attention-"
        "pooled whole history, the same weights) instead of model.k when it has the better "
        "Recall@50 on the validation users, history items out (the manifest records both). "
        "Models whose weights depend on K, and model.global_interest, keep model.k. False "
        "serves model.k, as in the paper",
    )
    select_checks: int = setting(
        1,
        positive,
        at_most(MAX_SLOTS),
        doc="with select_during: compare K with one embedding this many times in each "
        "epoch, evenly spaced (the last at its end, with the validation), until the one "
        "wins; the epoch's model selection is unchanged",
    )
    select_during: bool = setting(
        True,
        doc="with select_interests: make the same choice at each validation, and once the "
        "one embedding wins, train it for the rest of the run (the same weights, K = 1), so "
        "the run trains the query it serves; false: choose once, after training",
    )


@dataclass(frozen=True, kw_only=True)
class EvalConfig(Section):
    """Offline evaluation (paper Section 4.1.1)."""

    _section: ClassVar[str] = "eval"

    corpus_size: int = setting(1_000_000, positive, doc="N most-engaged items (paper: 1M)")
    ks: tuple[int, ...] = setting((50, 100, 1000), non_empty, all_positive, doc="HR@K cut-offs")
    max_users: int = setting(0, non_negative, doc="evaluate at most this many records (0: all)")
    core_min_positives: int = setting(5, positive, doc="core users: at least this many positives")
    core_window_days: float = setting(
        28.0, positive, at_most(MAX_DAYS), doc="core users: positives counted over this window"
    )
    k_ex: int = setting(
        5, positive, at_most(MAX_SLOTS), doc="K_ex: explicit embeddings per request"
    )
    budget: int = setting(1000, positive, at_most(MAX_BUDGET), doc="served-list size")
    importance_floor: int = setting(
        0, non_negative, doc="least budget of a used implicit embedding (Section 3.5)"
    )
    relevance_filter: bool = setting(
        True,
        doc="served lists: explicit embeddings search inside their topic (Section 3.3.3); "
        "false: the whole corpus (CR w/o filter, Table 3)",
    )
    seeds: tuple[int, ...] = setting(
        (0, 1, 2), all_non_negative, doc="training seeds of experiments"
    )


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration; each field is one TOML table."""

    _root: ClassVar[bool] = True

    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    examples: ExamplesConfig = field(default_factory=ExamplesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
