"""squash (Eq. 3) against a NumPy reference, its properties and its gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.nn.functional import squash

FAST = settings(max_examples=25, deadline=None)


def reference_squash(v: np.ndarray) -> np.ndarray:
    """Eq. 3 one vector at a time: ||v||^2 / (1 + ||v||^2) * v / ||v||, zero for zero."""
    out = np.zeros_like(v)
    for row in range(v.shape[0]):
        norm = np.sqrt(sum(x * x for x in v[row]))
        if norm > 0:
            out[row] = norm**2 / (1 + norm**2) * v[row] / norm
    return out


def random_vectors(seed: int, n: int, d: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scale = torch.logspace(-3, 1, n, dtype=dtype).unsqueeze(1)  # small to large norms
    return torch.randn(n, d, generator=gen, dtype=dtype) * scale


def test_matches_reference_including_zero_vectors() -> None:
    v = random_vectors(0, 12, 5)
    v[3] = 0.0
    expected = torch.from_numpy(reference_squash(v.numpy()))
    torch.testing.assert_close(squash(v), expected)


def test_hand_value() -> None:
    # ||(3, 4)|| = 5: 25/26 * (0.6, 0.8)
    torch.testing.assert_close(squash(torch.tensor([3.0, 4.0])), torch.tensor([0.6, 0.8]) * 25 / 26)


def test_dim_argument_squashes_along_that_dimension() -> None:
    v = random_vectors(1, 6, 4)
    torch.testing.assert_close(squash(v.T, dim=0), squash(v).T)


@FAST
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), d=st.integers(1, 6))
def test_keeps_direction_and_maps_norm_below_one(seed: int, n: int, d: int) -> None:
    v = random_vectors(seed, n, d)
    out = squash(v)
    norm = v.norm(dim=-1)
    torch.testing.assert_close(out.norm(dim=-1), norm**2 / (1 + norm**2))
    torch.testing.assert_close(out * norm.unsqueeze(-1), v * out.norm(dim=-1, keepdim=True))


@FAST
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6))
def test_permuting_rows_permutes_output(seed: int, n: int) -> None:
    v = random_vectors(seed, n, 3)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(squash(v[perm]), squash(v)[perm])


def test_gradcheck_generic_and_near_zero() -> None:
    v = random_vectors(2, 5, 3).requires_grad_()
    assert torch.autograd.gradcheck(squash, (v,))
    tiny = (random_vectors(3, 4, 3) * 1e-3).requires_grad_()
    assert torch.autograd.gradcheck(squash, (tiny,))


def test_zero_vector_has_finite_zero_gradient() -> None:
    v = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    out = squash(v)
    assert torch.equal(out, torch.zeros_like(out))
    (out * torch.arange(1.0, 5.0, dtype=torch.float64)).sum().backward()
    assert v.grad is not None
    assert torch.equal(v.grad, torch.zeros_like(v))
    assert torch.autograd.gradcheck(squash, (v,))


def test_rejects_integer_input() -> None:
    with pytest.raises(
        ValueError, match=r"squash: expected v of a floating dtype, got torch.int64"
    ):
        squash(torch.tensor([1, 2]))
