"""The default model trains under CPU bf16 autocast (an option some CPUs speed up)."""

from __future__ import annotations

import math

import torch

from multiembed.config import ModelConfig
from multiembed.nn.builders import build_model
from multiembed.nn.features import ItemFeatures
from multiembed.nn.retrieval import RetrievalBatch


def test_the_default_model_trains_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(0)
    n, b, length = 300, 64, 12
    features = ItemFeatures(n, vector=torch.randn(n, 8, generator=g))
    model = build_model(ModelConfig(), features=features, n_topics=0)
    history = torch.randint(0, n, (b, length), generator=g)
    history[: b // 2, : length // 2] = -1  # padding on half the rows
    batch = RetrievalBatch(history, history >= 0, torch.randint(0, n, (b,), generator=g))
    log_q = torch.full((b,), -math.log(n))
    full, _ = model.loss(batch, log_q)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half, _ = model.loss(batch, log_q)
    half.backward()
    assert torch.isfinite(half)
    assert abs(half.item() - full.item()) < 0.1  # the same loss, to bf16's precision
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads
    assert all(torch.isfinite(grad).all() for grad in grads)
