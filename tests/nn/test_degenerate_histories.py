"""Histories with nothing to cluster: no item at all, or one item repeated.

Every embedding is a normalised vector, and a zero vector has no direction: the
gradient of L2 there is about 1 / eps = 1e12, which gradient clipping then turns into a
step that moves nothing but that one vector. These rows come up in every real log (a
user's first engagement has no history; repeated plays and views repeat ids), so each
model must keep their gradients of the same order as any other row's.
"""

from __future__ import annotations

import pytest
import torch

from multiembed.nn.builders import MODEL_NAMES
from multiembed.nn.extractors import DCMExtractor
from multiembed.nn.features import ItemFeatures
from multiembed.nn.retrieval import RetrievalBatch
from tests.model_helpers import implicit_model

N, L, K = 60, 8, 4


def _features() -> ItemFeatures:
    g = torch.Generator().manual_seed(0)
    return ItemFeatures(
        N,
        vector=torch.randn(N, 6, generator=g),
        vector_present=torch.ones(N, dtype=torch.bool),
        codes=torch.randint(0, 3, (N, 1), generator=g),
        topics=torch.stack([torch.arange(N) % 5, torch.full((N,), -1)], dim=1),
    )


def _degenerate_batch() -> RetrievalBatch:
    g = torch.Generator().manual_seed(1)
    history = torch.randint(0, N, (6, L), generator=g)
    history[0] = -1  # a first engagement: no history
    history[1] = 7  # one item, L times
    history[2, :6] = -1  # two real items, the same one
    history[2, 6:] = 11
    history[3, ::2] = 3  # half the history one repeated item
    return RetrievalBatch(history, history >= 0, torch.randint(0, N, (6,), generator=g))


@pytest.mark.parametrize("global_interest", [False, True])
@pytest.mark.parametrize("user_summary", ["attention", "none"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_gradients_stay_bounded_on_empty_and_repeated_histories(
    name: str, user_summary: str, global_interest: bool
) -> None:
    model = implicit_model(
        name,
        features=_features(),
        k=K,
        dim=16,
        id_dim=8,
        hidden_dim=16,
        pfs_topics=5,
        share_items=True,
        user_summary=user_summary,  # type: ignore[arg-type]
        global_interest=global_interest,
        seed=0,
    )
    loss, _ = model.loss(_degenerate_batch(), torch.full((6,), -4.0))
    loss.backward()
    worst = max(
        (float(p.grad.abs().max()), n) for n, p in model.named_parameters() if p.grad is not None
    )
    assert worst[0] < 1e3, worst


def test_dcm_leaves_a_cluster_the_routing_emptied_unused() -> None:
    """One item repeated: however many seeds, one cluster holds it all."""
    extractor = DCMExtractor(dim=5, k=K, generator=torch.Generator().manual_seed(0))
    e = torch.randn(5).expand(2, L, 5).clone()
    e[1] = torch.randn(L, 5)  # distinct items: every slot keeps mass
    mask = torch.ones(2, L, dtype=torch.bool)
    interests = extractor.eval()(e, mask, mask)
    used = interests.slot_mask
    assert used[0].tolist() == [True, False, False, False]
    assert used[1].all()
    assert (interests.importance[used] > 0).all()
    assert (interests.conditions[used].norm(dim=-1) > 0).all()
