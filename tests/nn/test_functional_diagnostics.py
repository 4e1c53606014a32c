"""Collapse diagnostics: pairwise cosine, slot win shares and the effective number of interests."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.nn.functional import effective_interests, mean_pairwise_cosine, slot_win_share

FAST = settings(max_examples=25, deadline=None)


def random_users(
    seed: int, b: int = 5, k: int = 4, d: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    user = torch.randn(b, k, d, generator=gen, dtype=torch.float64)
    slot_mask = torch.rand(b, k, generator=gen) < 0.7
    return user, slot_mask


def reference_mean_pairwise_cosine(user: torch.Tensor, slot_mask: torch.Tensor) -> float:
    """Per user, the mean cosine over unordered pairs of real slots; then the mean over users."""
    per_user = []
    for b in range(user.shape[0]):
        real = [j for j in range(user.shape[1]) if slot_mask[b, j]]
        pairs = [(j, m) for j in real for m in real if j < m]
        if not pairs:
            continue
        cosines = []
        for j, m in pairs:
            dot = sum(float(user[b, j, x] * user[b, m, x]) for x in range(user.shape[2]))
            cosines.append(dot / (float(user[b, j].norm()) * float(user[b, m].norm())))
        per_user.append(sum(cosines) / len(cosines))
    return sum(per_user) / len(per_user) if per_user else math.nan


def test_mean_pairwise_cosine_matches_reference() -> None:
    user, slot_mask = random_users(0, b=8)
    slot_mask[0] = False  # no pair: left out of the average
    slot_mask[1] = torch.tensor([True, False, False, False])
    expected = reference_mean_pairwise_cosine(user, slot_mask)
    torch.testing.assert_close(
        mean_pairwise_cosine(user, slot_mask), torch.tensor(expected, dtype=torch.float64)
    )
    all_real = torch.ones_like(slot_mask)
    torch.testing.assert_close(
        mean_pairwise_cosine(user),
        torch.tensor(reference_mean_pairwise_cosine(user, all_real), dtype=torch.float64),
    )


def test_mean_pairwise_cosine_extremes() -> None:
    collapsed = torch.tensor([[[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]]])
    torch.testing.assert_close(mean_pairwise_cosine(collapsed), torch.tensor(1.0))
    orthogonal = torch.eye(3).unsqueeze(0)
    torch.testing.assert_close(mean_pairwise_cosine(orthogonal), torch.tensor(0.0))
    lonely = torch.tensor([[True, False, False]])
    assert math.isnan(float(mean_pairwise_cosine(orthogonal, lonely)))


@FAST
@given(seed=st.integers(0, 2**31 - 1), extra=st.integers(1, 3))
def test_mean_pairwise_cosine_ignores_masked_slots_and_batch_order(seed: int, extra: int) -> None:
    user, slot_mask = random_users(seed)
    slot_mask[:, :2] = True
    base = mean_pairwise_cosine(user, slot_mask)
    garbage = torch.full((5, extra, 3), 1e3, dtype=torch.float64)
    padded = mean_pairwise_cosine(
        torch.cat([user, garbage], dim=1),
        torch.cat([slot_mask, torch.zeros(5, extra, dtype=torch.bool)], dim=1),
    )
    torch.testing.assert_close(padded, base)
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(mean_pairwise_cosine(user[perm], slot_mask[perm]), base)


def test_slot_win_share_matches_counts() -> None:
    selected = torch.tensor([0, 3, 3, 1, 3, 0, 3, 3])
    expected = torch.tensor([2 / 8, 1 / 8, 0.0, 5 / 8, 0.0])
    torch.testing.assert_close(slot_win_share(selected, 5), expected)


@FAST
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 30), k=st.integers(1, 6))
def test_slot_win_share_sums_to_one_whatever_the_order(seed: int, b: int, k: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    selected = torch.randint(0, k, (b,), generator=gen)
    share = slot_win_share(selected, k)
    assert share.shape == (k,)
    torch.testing.assert_close(share.sum(), torch.tensor(1.0))
    counts = [sum(1 for s in selected.tolist() if s == j) / b for j in range(k)]
    torch.testing.assert_close(share, torch.tensor(counts))
    torch.testing.assert_close(slot_win_share(selected[torch.randperm(b, generator=gen)], k), share)


def test_effective_interests_range_and_reference() -> None:
    torch.testing.assert_close(effective_interests(torch.full((7,), 1 / 7)), torch.tensor(7.0))
    torch.testing.assert_close(
        effective_interests(torch.tensor([0.0, 1.0, 0.0])), torch.tensor(1.0)
    )
    share = torch.tensor([0.5, 0.25, 0.125, 0.125, 0.0], dtype=torch.float64)
    entropy = -sum(p * math.log(p) for p in share.tolist() if p > 0)
    torch.testing.assert_close(
        effective_interests(share), torch.tensor(math.exp(entropy), dtype=torch.float64)
    )
    torch.testing.assert_close(effective_interests(share.flip(0)), effective_interests(share))


def test_error_messages_name_expected_and_got() -> None:
    with pytest.raises(
        ValueError,
        match=r"slot_win_share: expected slot indices in \[0, 3\), got values in \[0, 3\]",
    ):
        slot_win_share(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match=r"slot_win_share: expected at least one selection"):
        slot_win_share(torch.tensor([], dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"slot_win_share: expected selected of an integer dtype"):
        slot_win_share(torch.tensor([0.0]), 3)
    with pytest.raises(
        ValueError,
        match=r"effective_interests: expected non-negative shares summing to 1, "
        r"got min 0.5 and sum 1.5",
    ):
        effective_interests(torch.tensor([0.5, 1.0]))
    with pytest.raises(
        ValueError, match=r"mean_pairwise_cosine: expected slot_mask of shape \[B, K\]"
    ):
        mean_pairwise_cosine(torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
