"""Offline evaluation metrics: pure NumPy functions (the curated public surface).

The paper's protocol (Section 4.1.1)
    `positive_ranks` / `filtered_positive_ranks` rank each record's one positive
    against a corpus of the most-engaged items, scoring an item by the max over the
    user's embeddings (masked slots ignored; a positive outside the corpus is
    compared with the ranked corpus items; ties pessimistic by default);
    `hit_rate_at_k` turns ranks into HR@K. `max_scores` is the scoring itself.
The ComiRec protocol
    `top_n` retrieves the top-N from the full item set by max over embeddings;
    `ranking_metrics` gives Recall@N, HitRate@N and NDCG@N per user;
    `drop_seen` takes the items of a user's history out of its ranked list;
    `unseen_recall` is Recall@N with the history out of ranking and targets (the
    outside benchmark's protocol);
    `interest_cosine` is the mean pairwise cosine of each user's used embeddings.
Serving (Section 4.4)
    `served_hits`: is the positive in the candidate list the plan actually returned.
Sets and users
    `interest_coverage`, `topic_diversity`, `candidate_overlap`, `user_segments`
    (`SEGMENTS`: core, non-core, new), and `mean_std` over seeds.

Shapes: ``B`` records or users, ``K`` embeddings, ``D`` dim, ``C`` corpus items,
``N`` items, ``T`` topic slots (``-1`` pads).
"""

from multiembed.eval._lists import drop_seen, interest_cosine, unseen_recall
from multiembed.eval._ranking import RankingMetrics, hit_rate_at_k, ranking_metrics, served_hits
from multiembed.eval._scores import (
    TIE_RULES,
    TieRule,
    TopN,
    filtered_positive_ranks,
    max_scores,
    positive_ranks,
    top_n,
)
from multiembed.eval._sets import (
    CORE,
    NEW,
    NON_CORE,
    SEGMENTS,
    MeanStd,
    candidate_overlap,
    interest_coverage,
    mean_std,
    topic_diversity,
    user_segments,
)
from multiembed.eval.errors import MetricInputError

__all__ = [
    "CORE",
    "NEW",
    "NON_CORE",
    "SEGMENTS",
    "TIE_RULES",
    "MeanStd",
    "MetricInputError",
    "RankingMetrics",
    "TieRule",
    "TopN",
    "candidate_overlap",
    "drop_seen",
    "filtered_positive_ranks",
    "hit_rate_at_k",
    "interest_cosine",
    "interest_coverage",
    "max_scores",
    "mean_std",
    "positive_ranks",
    "ranking_metrics",
    "served_hits",
    "top_n",
    "topic_diversity",
    "unseen_recall",
    "user_segments",
]
