"""Interest extractors: the summarised sequence ``[B, L, D]`` -> ``K`` conditions ``[B, K, D]``.

All follow the `InterestExtractor` protocol and return `Interests`:

- `SingleExtractor`: K = 1, attention pooling with recency (the baseline);
- `CapsuleExtractor`: MIND, Gaussian centroids and vanilla routing;
- `DCMExtractor`: the paper's Differentiable Clustering Module;
- `SelfAttentionExtractor`: ComiRec-SA heads;
- `InterestTokenExtractor`: learned query tokens (MVKE without gating);
- `SubsequenceExtractor`: PinnerFormer-style topic subsequences, with the offline
  `kmeans_topics` and `assign_topics`.
"""

from multiembed.nn.extractors.base import InterestExtractor, Interests, RoutingFn
from multiembed.nn.extractors.capsule import CapsuleExtractor
from multiembed.nn.extractors.dcm import Clustering, DCMExtractor, InitName
from multiembed.nn.extractors.interest_token import InterestTokenExtractor
from multiembed.nn.extractors.self_attention import SelfAttentionExtractor
from multiembed.nn.extractors.single import SingleExtractor
from multiembed.nn.extractors.subsequence import SubsequenceExtractor
from multiembed.nn.extractors.topics import NO_TOPIC, assign_topics, kmeans_topics

__all__ = [
    "NO_TOPIC",
    "CapsuleExtractor",
    "Clustering",
    "DCMExtractor",
    "InitName",
    "InterestExtractor",
    "InterestTokenExtractor",
    "Interests",
    "RoutingFn",
    "SelfAttentionExtractor",
    "SingleExtractor",
    "SubsequenceExtractor",
    "assign_topics",
    "kmeans_topics",
]
