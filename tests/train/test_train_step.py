"""The training step's loss: a NumPy loop reference, and equality with `RetrievalModel.loss`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from multiembed.config import TrainConfig
from multiembed.nn.features import ItemFeatures
from multiembed.nn.functional import sampled_softmax_loss
from multiembed.nn.retrieval import RetrievalBatch
from multiembed.train._distributed import DistContext, RowStreams
from multiembed.train._setup import adamw
from multiembed.train._step import TowerStep
from tests.model_helpers import implicit_model


def reference_rows(chosen, items, log_q, ids, start, temperature):
    """Eq. 9 row by row: softmax over all columns, positives at start + i, hits removed."""
    out = []
    for i in range(chosen.shape[0]):
        pos = start + i
        logits = []
        for k in range(items.shape[0]):
            if k != pos and ids[k] == ids[pos]:
                continue  # accidental hit: the same item as the row's target
            logits.append((k, float(chosen[i] @ items[k]) / temperature - float(log_q[k])))
        top = max(v for _, v in logits)
        log_z = top + math.log(sum(math.exp(v - top) for _, v in logits))
        out.append(log_z - dict(logits)[pos])
    return np.array(out)


@pytest.mark.parametrize("start", [0, 3, 5])
def test_a_slice_of_rows_matches_a_loop_reference(start: int):
    g = torch.Generator().manual_seed(start)
    n, b, d = 9, 4, 5
    items = torch.nn.functional.normalize(
        torch.randn(n, d, generator=g, dtype=torch.float64), dim=1
    )
    chosen = torch.nn.functional.normalize(
        torch.randn(b, d, generator=g, dtype=torch.float64), dim=1
    )
    log_q = -torch.rand(n, generator=g, dtype=torch.float64) * 3
    ids = torch.tensor([3, 1, 3, 4, 1, 7, 3, 8, 1])  # repeated ids: accidental hits
    got = sampled_softmax_loss(
        chosen,
        items,
        log_q,
        item_ids=ids,
        start=min(start, n - b),
        temperature=0.2,
        reduction="none",
    )
    want = reference_rows(
        chosen.numpy(), items.numpy(), log_q.numpy(), ids.numpy(), min(start, n - b), 0.2
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_a_slice_with_every_slot_scores_each_column_by_the_best_used_slot():
    g = torch.Generator().manual_seed(0)
    n, b, k, d = 9, 4, 3, 5
    items = torch.randn(n, d, generator=g, dtype=torch.float64)
    users = torch.randn(b, k, d, generator=g, dtype=torch.float64)
    slot_mask = torch.tensor(
        [[True, True, True], [True, False, False], [False, True, True], [True, True, False]]
    )
    log_q = -torch.rand(n, generator=g, dtype=torch.float64) * 3
    ids = torch.tensor([3, 1, 3, 4, 1, 7, 3, 8, 1])
    got = sampled_softmax_loss(
        users,
        items,
        log_q,
        item_ids=ids,
        start=2,
        temperature=0.2,
        slot_mask=slot_mask,
        reduction="none",
    )
    # The best used slot of row i against column c, then the loop reference row by row.
    want = []
    for i in range(b):
        used = [j for j in range(k) if slot_mask[i, j]]
        best = np.array([[max(float(users[i, j] @ items[c]) for j in used) for c in range(n)]])
        eye = np.eye(n)  # a one-hot "user" per column gives best[c] as the dot product
        row = reference_rows(best @ eye.T, eye, log_q.numpy(), ids.numpy(), 2 + i, 0.2)
        want.append(row[0])
    np.testing.assert_allclose(got.numpy(), np.array(want), rtol=1e-12)


@pytest.mark.parametrize("name", ["dcm", "mind", "self_attention"])
def test_one_process_step_equals_the_model_loss(name: str):
    """TowerStep + `RetrievalModel.eq9` over the whole batch is `RetrievalModel.loss`, noise
    included."""
    g = torch.Generator().manual_seed(1)
    features = ItemFeatures(n_items=40, vector=torch.randn(40, 6, generator=g))
    history = torch.randint(-1, 40, (12, 7), generator=g)
    batch = RetrievalBatch(history, history >= 0, torch.randint(0, 40, (12,), generator=g))
    log_q = -torch.rand(12, generator=g)

    def fresh():
        return implicit_model(name, features=features, k=3, dim=8, hidden_dim=16, seed=4)

    reference = fresh()
    want, _ = reference.loss(batch, log_q)
    model = fresh()
    streams = RowStreams(model)
    with streams.aligned(DistContext(), [12]):
        out = TowerStep(model)(batch.history, batch.history_valid, batch.target, None)
    rows = model.eq9(out.user, out.slot_mask, out.chosen, out.item, log_q, batch.target)
    torch.testing.assert_close(rows.sum() / 12, want, rtol=1e-6, atol=0)


def test_one_process_step_equals_the_model_loss_with_max_scoring():
    g = torch.Generator().manual_seed(2)
    features = ItemFeatures(n_items=40, vector=torch.randn(40, 6, generator=g))
    history = torch.randint(-1, 40, (12, 7), generator=g)
    batch = RetrievalBatch(history, history >= 0, torch.randint(0, 40, (12,), generator=g))
    log_q = -torch.rand(12, generator=g)

    def fresh(scoring):
        return implicit_model(
            "dcm", features=features, k=3, dim=8, hidden_dim=16, seed=4, scoring=scoring
        ).eval()

    model = fresh("max")
    want, _ = model.loss(batch, log_q)
    out = TowerStep(model)(batch.history, batch.history_valid, batch.target, None)
    rows = model.eq9(out.user, out.slot_mask, out.chosen, out.item, log_q, batch.target)
    torch.testing.assert_close(rows.sum() / 12, want, rtol=1e-6, atol=0)
    associated, _ = fresh("associated").loss(batch, log_q)
    # Same positive score (the arg-max slot), every negative scored at least as high.
    assert want.item() > associated.item()


def test_the_optimiser_updates_all_parameters_at_once_with_the_per_tensor_values():
    """`adamw` batches the update (foreach) and matches torch's per-tensor loop bit for bit."""
    tc = TrainConfig(lr=1e-2, weight_decay=1e-3)
    features = ItemFeatures(
        n_items=30, vector=torch.randn(30, 4, generator=torch.Generator().manual_seed(1))
    )
    models = [implicit_model("dcm", features=features, seed=0) for _ in range(2)]
    batched = adamw(models[0], tc)
    looped = torch.optim.AdamW(models[1].parameters(), lr=1e-2, weight_decay=1e-3, foreach=False)
    assert batched.defaults["foreach"] is True
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=g) for p in models[0].parameters()]
        for model, opt in zip(models, (batched, looped), strict=True):
            for p, grad in zip(model.parameters(), grads, strict=True):
                p.grad = grad.clone()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a, b)
