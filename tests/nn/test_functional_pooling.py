"""`masked_mean`: the one pooling of a padded sequence, against a loop over the real items."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.nn.functional import masked_mean

FAST = settings(max_examples=25, deadline=None)
PACKAGE = Path(__file__).resolve().parents[2] / "src" / "multiembed"


def random_sequences(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[4, 5, 3]`` float64 embeddings and their ``[4, 5]`` mask; row 0 has no real item."""
    gen = torch.Generator().manual_seed(seed)
    e = torch.randn(4, 5, 3, generator=gen, dtype=torch.float64)
    mask = torch.rand(4, 5, generator=gen) < 0.6
    mask[0] = False
    return e, mask


def reference_masked_mean(e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    rows = []
    for b in range(e.shape[0]):
        real = [e[b, i] for i in range(e.shape[1]) if mask[b, i]]
        rows.append(sum(real) / len(real) if real else torch.zeros(e.shape[2], dtype=e.dtype))
    return torch.stack(rows)


@FAST
@given(seed=st.integers(0, 10_000))
def test_masked_mean_matches_a_loop_over_real_items(seed: int) -> None:
    e, mask = random_sequences(seed)
    got = masked_mean(e, mask)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, reference_masked_mean(e, mask))
    assert torch.equal(got[0], torch.zeros(3, dtype=e.dtype))


@FAST
@given(seed=st.integers(0, 10_000), extra=st.integers(1, 4))
def test_masked_mean_ignores_padding_whatever_it_holds(seed: int, extra: int) -> None:
    e, mask = random_sequences(seed)
    padded = torch.cat([e, torch.full((4, extra, 3), float("nan"), dtype=e.dtype)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(4, extra, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(masked_mean(padded, padded_mask), masked_mean(e, mask))


def test_masked_mean_gradient() -> None:
    e, mask = random_sequences(3)
    assert torch.autograd.gradcheck(lambda x: masked_mean(x, mask), (e.requires_grad_(),))


def test_masked_mean_names_wrong_arguments() -> None:
    e, mask = random_sequences(0)
    with pytest.raises(ValueError, match=r"masked_mean: expected mask of dtype torch\.bool"):
        masked_mean(e, mask.float())
    with pytest.raises(ValueError, match=r"masked_mean: expected mask of shape \[B, L\] with L"):
        masked_mean(e, mask[:, :2])
    with pytest.raises(ValueError, match="masked_mean: expected e of a floating dtype"):
        masked_mean(e.long(), mask)


def test_the_library_pools_with_this_masked_mean_only() -> None:
    defined = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "masked_mean"
    )
    assert defined == ["nn/functional/_pooling.py"]
