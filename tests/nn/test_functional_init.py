"""Farthest point initialisation (Eq. 5, 6) and Gaussian centroids."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.nn.functional import Seeds, farthest_point_init, gaussian_centroids

FAST = settings(max_examples=25, deadline=None)


class Sequences(NamedTuple):
    e: torch.Tensor  # [B, L, D]
    mask: torch.Tensor  # [B, L]
    valid: torch.Tensor  # [B, L]


def random_sequences(seed: int, b: int = 5, length: int = 8, d: int = 3) -> Sequences:
    """Rows of varied length: full, short, all padding, all invalid and mixed validity."""
    gen = torch.Generator().manual_seed(seed)
    e = torch.randn(b, length, d, generator=gen, dtype=torch.float64)
    mask = torch.rand(b, length, generator=gen) < 0.6
    valid = torch.rand(b, length, generator=gen) < 0.6
    mask[0] = True
    if b > 1:
        mask[1] = False
        mask[1, :2] = True  # a short sequence
    if b > 2:
        mask[2] = False  # all padding
    if b > 3:
        valid[3] = False  # real items, none valid
    return Sequences(e, mask, valid)


def reference_fpi(
    e: torch.Tensor, mask: torch.Tensor, k: int, valid: torch.Tensor | None, first: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 5 with the validity tiers, one row at a time; `first[b]` is row b's first seed."""
    e_np, mask_np = e.numpy(), mask.numpy()
    valid_np = mask_np if valid is None else valid.numpy()
    all_indices, all_real = [], []
    for b in range(e_np.shape[0]):
        real = [i for i in range(e_np.shape[1]) if mask_np[b, i]]
        good = [i for i in real if valid_np[b, i]]
        chosen: list[int] = []
        flags: list[bool] = []
        for slot in range(k):
            pool = [i for i in good if i not in chosen] or [i for i in real if i not in chosen]
            if not pool:
                chosen.append(chosen[0] if chosen else 0)
                flags.append(False)
                continue
            if slot == 0:
                assert first[b] in pool, "the first seed must be eligible"
                pick = first[b]
            else:  # min returns the first minimum: ties go to the lowest position
                pick = min(pool, key=lambda i: max(float(e_np[b, c] @ e_np[b, i]) for c in chosen))
            chosen.append(pick)
            flags.append(True)
        all_indices.append(chosen)
        all_real.append(flags)
    return np.array(all_indices), np.array(all_real)


def last_eligible(mask: torch.Tensor, valid: torch.Tensor | None) -> list[int]:
    """The deterministic first seed: the last valid real position, else the last real one."""
    firsts = []
    for b in range(mask.shape[0]):
        good = [i for i in range(mask.shape[1]) if mask[b, i] and (valid is None or valid[b, i])]
        real = [i for i in range(mask.shape[1]) if mask[b, i]]
        firsts.append((good or real or [0])[-1])
    return firsts


def assert_seeds_equal(got: Seeds, indices: np.ndarray, is_real: np.ndarray) -> None:
    assert torch.equal(got.indices, torch.from_numpy(indices).long())
    assert torch.equal(got.is_real, torch.from_numpy(is_real))


@pytest.mark.parametrize("k", [1, 3, 6, 10])
@pytest.mark.parametrize("use_valid", [False, True])
def test_matches_reference_deterministic(k: int, use_valid: bool) -> None:
    seq = random_sequences(k)
    valid = seq.valid if use_valid else None
    got = farthest_point_init(seq.e, seq.mask, k, generator=None, valid=valid)
    expected = reference_fpi(seq.e, seq.mask, k, valid, last_eligible(seq.mask, valid))
    assert_seeds_equal(got, *expected)


@pytest.mark.parametrize("k", [1, 4, 9])
def test_matches_reference_with_a_generator(k: int) -> None:
    seq = random_sequences(100 + k, b=6)
    got = farthest_point_init(
        seq.e, seq.mask, k, generator=torch.Generator().manual_seed(k), valid=seq.valid
    )
    first = got.indices[:, 0].tolist()
    assert_seeds_equal(got, *reference_fpi(seq.e, seq.mask, k, seq.valid, first))


@pytest.mark.parametrize("k", [1, 4, 9])
def test_the_traced_path_picks_the_same_seeds(k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a graph is traced for ONNX the picked items are read by a masked sum, not by
    indexing: the same seeds, ties (rounded vectors) included."""
    seq = random_sequences(200 + k, b=6, length=12)
    e = seq.e.round()  # equal similarities: ties break as in eager mode
    eager = farthest_point_init(e, seq.mask, k, generator=None, valid=seq.valid)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    traced = farthest_point_init(e, seq.mask, k, generator=None, valid=seq.valid)
    assert_seeds_equal(
        traced, *reference_fpi(e, seq.mask, k, seq.valid, last_eligible(seq.mask, seq.valid))
    )
    assert torch.equal(traced.indices, eager.indices)


def test_hand_built_farthest_points() -> None:
    # Last item (-1, 0) seeds; its opposite (1, 0) comes next; then the orthogonal (0, 1)
    # beats the near-duplicate (0.9, 0.1) of a seed.
    e = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [7.0, 7.0]]])
    mask = torch.tensor([[True, True, True, True, False]])
    got = farthest_point_init(e, mask, 4, generator=None)
    assert got.indices.tolist() == [[3, 0, 2, 1]]
    assert got.is_real.all()


def test_invalid_item_waits_until_valid_ones_run_out() -> None:
    # Item 2 is the farthest from the seed but invalid: valid item 1 goes first.
    e = torch.tensor([[[1.0, 0.0], [0.5, 0.5], [-1.0, 0.0], [0.9, 0.0]]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    valid = torch.tensor([[True, True, False, True]])
    got = farthest_point_init(e, mask, 4, generator=None, valid=valid)
    assert got.indices.tolist() == [[3, 1, 0, 2]]
    assert got.is_real.tolist() == [[True, True, True, True]]
    without_validity = farthest_point_init(e, mask, 2, generator=None)
    assert without_validity.indices.tolist() == [[3, 2]]


def test_short_sequences_repeat_the_first_seed_and_flag_it_not_real() -> None:
    e = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor(
        [[False, True, False, True], [False, False, False, False], [True, True, True, True]]
    )
    got = farthest_point_init(e, mask, 4, generator=None)
    first, second = got.indices[0, :2].tolist()
    assert {first, second} == {1, 3}
    assert got.indices[0].tolist() == [first, second, first, first]
    assert got.is_real[0].tolist() == [True, True, False, False]
    # All padding: nothing real, every slot flagged and pointing at position 0.
    assert got.indices[1].tolist() == [0, 0, 0, 0]
    assert got.is_real[1].tolist() == [False] * 4
    assert sorted(got.indices[2].tolist()) == [0, 1, 2, 3]
    assert got.is_real[2].all()


@FAST
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 10), use_gen=st.booleans())
def test_tier_order_padding_and_distinctness(seed: int, k: int, use_gen: bool) -> None:
    seq = random_sequences(seed)
    gen = torch.Generator().manual_seed(seed) if use_gen else None
    got = farthest_point_init(seq.e, seq.mask, k, generator=gen, valid=seq.valid)
    for b in range(seq.e.shape[0]):
        n_real = int(seq.mask[b].sum())
        n_valid = int((seq.mask[b] & seq.valid[b]).sum())
        real_slots = got.indices[b][got.is_real[b]].tolist()
        assert got.is_real[b].tolist() == [True] * min(k, n_real) + [False] * (k - min(k, n_real))
        assert len(set(real_slots)) == len(real_slots), "no item is chosen twice"
        assert all(seq.mask[b, i] for i in real_slots), "padding is never chosen"
        tiers = [bool(seq.valid[b, i]) for i in real_slots]
        assert tiers == [True] * min(k, n_valid) + [False] * (len(tiers) - min(k, n_valid))
        if n_real:  # fillers repeat the first seed
            assert all(i == real_slots[0] for i in got.indices[b][~got.is_real[b]].tolist())


@FAST
@given(seed=st.integers(0, 2**31 - 1), extra=st.integers(1, 5), use_gen=st.booleans())
def test_appending_padding_changes_nothing(seed: int, extra: int, use_gen: bool) -> None:
    seq = random_sequences(seed)
    b, _, d = seq.e.shape
    e = torch.cat([seq.e, torch.full((b, extra, d), 1e6, dtype=seq.e.dtype)], dim=1)
    mask = torch.cat([seq.mask, torch.zeros(b, extra, dtype=torch.bool)], dim=1)
    valid = torch.cat([seq.valid, torch.ones(b, extra, dtype=torch.bool)], dim=1)

    def seeds(e: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor) -> Seeds:
        gen = torch.Generator().manual_seed(seed) if use_gen else None
        return farthest_point_init(e, mask, 4, generator=gen, valid=valid)

    base, padded = seeds(seq.e, seq.mask, seq.valid), seeds(e, mask, valid)
    assert torch.equal(padded.indices, base.indices)
    assert torch.equal(padded.is_real, base.is_real)


@FAST
@given(seed=st.integers(0, 2**31 - 1))
def test_permuting_the_batch_permutes_the_output(seed: int) -> None:
    seq = random_sequences(seed)
    perm = torch.randperm(seq.e.shape[0], generator=torch.Generator().manual_seed(seed))
    base = farthest_point_init(seq.e, seq.mask, 5, generator=None, valid=seq.valid)
    permuted = farthest_point_init(
        seq.e[perm], seq.mask[perm], 5, generator=None, valid=seq.valid[perm]
    )
    assert torch.equal(permuted.indices, base.indices[perm])
    assert torch.equal(permuted.is_real, base.is_real[perm])


def test_same_seed_same_seeds_and_other_seeds_differ() -> None:
    seq = random_sequences(7, b=16, length=12)

    def run(seed: int) -> Seeds:
        gen = torch.Generator().manual_seed(seed)
        return farthest_point_init(seq.e, seq.mask, 3, generator=gen, valid=seq.valid)

    assert torch.equal(run(1).indices, run(1).indices)
    assert not torch.equal(run(1).indices, run(2).indices)


def test_first_seed_is_uniform_over_eligible_items() -> None:
    rows = 6000
    e = torch.randn(1, 8, 2, generator=torch.Generator().manual_seed(0)).expand(rows, 8, 2)
    mask = torch.tensor([True, False, True, True, True, False, True, True]).expand(rows, 8)
    valid = torch.tensor([True, True, True, False, True, True, True, True]).expand(rows, 8)
    got = farthest_point_init(e, mask, 1, generator=torch.Generator().manual_seed(3), valid=valid)
    counts = torch.bincount(got.indices[:, 0], minlength=8) / rows
    eligible = mask[0] & valid[0]  # positions 0, 2, 4, 6, 7
    assert torch.all(counts[~eligible] == 0)
    torch.testing.assert_close(counts[eligible], torch.full((5,), 0.2), atol=0.02, rtol=0)


def test_indices_carry_no_gradient() -> None:
    seq = random_sequences(8)
    got = farthest_point_init(seq.e.requires_grad_(), seq.mask, 3, generator=None)
    assert got.indices.dtype == torch.int64
    assert not got.indices.requires_grad


def test_error_messages_name_expected_and_got() -> None:
    seq = random_sequences(9, b=2, length=5)
    with pytest.raises(
        ValueError, match=r"farthest_point_init: expected k to be an int >= 1, got 0"
    ):
        farthest_point_init(seq.e, seq.mask, 0, generator=None)
    with pytest.raises(
        ValueError,
        match=r"farthest_point_init: expected valid of shape \[B, L\] with L = 5 "
        r"\(from e\), got shape \[2, 3\]",
    ):
        farthest_point_init(seq.e, seq.mask, 2, generator=None, valid=seq.valid[:, :3])
    with pytest.raises(ValueError, match=r"expected mask of dtype torch.bool, got torch.int64"):
        farthest_point_init(seq.e, seq.mask.long(), 2, generator=None)
    with pytest.raises(ValueError, match=r"expected sequence length L to be an int >= 1, got 0"):
        farthest_point_init(seq.e[:, :0], seq.mask[:, :0], 2, generator=None)
    with pytest.raises(TypeError, match=r"expected generator to be a torch.Generator, got int"):
        farthest_point_init(seq.e, seq.mask, 2, generator=0)  # type: ignore[arg-type]


def test_gaussian_centroids_are_deterministic_given_the_generator() -> None:
    first = gaussian_centroids(2, 3, 4, generator=torch.Generator().manual_seed(5))
    again = gaussian_centroids(2, 3, 4, generator=torch.Generator().manual_seed(5))
    other = gaussian_centroids(2, 3, 4, generator=torch.Generator().manual_seed(6))
    assert first.shape == (2, 3, 4)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    wide = gaussian_centroids(2, 3, 4, generator=torch.Generator().manual_seed(5), std=2.5)
    torch.testing.assert_close(wide, 2.5 * first)
    double = gaussian_centroids(2, 3, 4, generator=torch.Generator(), dtype=torch.float64)
    assert double.dtype == torch.float64


def test_gaussian_centroids_have_the_requested_spread() -> None:
    draws = gaussian_centroids(64, 8, 32, generator=torch.Generator().manual_seed(0), std=0.5)
    assert abs(float(draws.mean())) < 0.02
    assert abs(float(draws.std()) - 0.5) < 0.02


def test_gaussian_centroids_refuse_to_use_global_randomness() -> None:
    with pytest.raises(TypeError, match=r"gaussian_centroids: expected generator to be a torch"):
        gaussian_centroids(1, 2, 3, generator=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"gaussian_centroids: expected std > 0 and finite, got 0"):
        gaussian_centroids(1, 2, 3, generator=torch.Generator(), std=0)
