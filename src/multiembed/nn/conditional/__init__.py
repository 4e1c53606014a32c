"""Explicit interests: Conditional Retrieval (Section 3.3 of the paper, Figure 4).

The user tower is `multiembed.nn.user_tower.UserTower` with `TopicConditions`: the
condition (a topic) is a field of the embedding layer, crossed with the user's fields
by DHEN (Section 3.3.1). This package holds what else differs from implicit interests:

- condition association (Section 3.3.2) behind `ConditionAssociation`:
  `SourceInterest` (the topic logged with the engagement) and `ItemInterest` (a topic
  sampled from the engaged item's topics, the Lin et al. baseline), returning
  `Conditions`;
- `ConditionalRetrievalModel`: both towers, the association and the Eq. 9 loss over a
  `ConditionalBatch`, reporting `ConditionalStats`;
- the pure helper `sample_item_topic`.

`multiembed.nn.builders.build_conditional_model` wires a model from a `ModelConfig`.
"""

from multiembed.nn.conditional._association import (
    ConditionAssociation,
    Conditions,
    ItemInterest,
    SourceInterest,
)
from multiembed.nn.conditional._functional import sample_item_topic
from multiembed.nn.conditional._model import (
    ConditionalBatch,
    ConditionalRetrievalModel,
    ConditionalStats,
)

__all__ = [
    "ConditionAssociation",
    "ConditionalBatch",
    "ConditionalRetrievalModel",
    "ConditionalStats",
    "Conditions",
    "ItemInterest",
    "SourceInterest",
    "sample_item_topic",
]
