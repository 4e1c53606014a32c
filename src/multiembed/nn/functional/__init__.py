"""Pure tensor math of the models: no parameters, no global state, randomness by generator.

- `squash` (Eq. 3), `capsule_routing` (MIND, Eq. 1-2) and
  `single_assignment_routing` (DCM, Eq. 7), returning a `Routing`, and
  `significant_slots` (clusters holding a minimum share of the routed mass);
  `weighted_means` and `weighted_centroids` (a cluster's items weighted, e.g. by a
  learned attention; the mean itself, or squashed at the routed mass);
- `farthest_point_init` (Eq. 5-6), returning `Seeds`, and `gaussian_centroids`;
- `argmax_association` (Eq. 8) and `gumbel_association` (straight-through Gumbel
  softmax, Section 3.2.4), returning an `Association`;
- `sampled_softmax_logits` and `sampled_softmax_loss` (Eq. 9, logQ correction,
  accidental-hit masking, optionally a user's own items out of its negatives with
  `in_rows`), and `best_slot_scores` (every item scored by the user's best
  embedding, the retrieval-time score);
- `masked_mean` (a padded sequence pooled over its real items);
- collapse diagnostics: `mean_pairwise_cosine`, `slot_win_share`, `effective_interests`.

Shapes use one alphabet: B batch, L sequence, K interests, D dimension. Masks are
bool with True for real entries. Wrong shapes or dtypes raise `ValueError`
naming the function, the argument, what was expected and what was given.
"""

from multiembed.nn.functional._association import (
    Association,
    argmax_association,
    gumbel_association,
)
from multiembed.nn.functional._centroid_init import Seeds, farthest_point_init, gaussian_centroids
from multiembed.nn.functional._diagnostics import (
    effective_interests,
    mean_pairwise_cosine,
    slot_win_share,
)
from multiembed.nn.functional._loss import (
    best_slot_scores,
    in_rows,
    sampled_softmax_logits,
    sampled_softmax_loss,
)
from multiembed.nn.functional._pooling import masked_mean
from multiembed.nn.functional._routing import (
    Affinity,
    Routing,
    capsule_routing,
    significant_slots,
    single_assignment_routing,
    squash,
    weighted_centroids,
    weighted_means,
)

__all__ = [
    "Affinity",
    "Association",
    "Routing",
    "Seeds",
    "argmax_association",
    "best_slot_scores",
    "capsule_routing",
    "effective_interests",
    "farthest_point_init",
    "gaussian_centroids",
    "gumbel_association",
    "in_rows",
    "masked_mean",
    "mean_pairwise_cosine",
    "sampled_softmax_logits",
    "sampled_softmax_loss",
    "significant_slots",
    "single_assignment_routing",
    "slot_win_share",
    "squash",
    "weighted_centroids",
    "weighted_means",
]
