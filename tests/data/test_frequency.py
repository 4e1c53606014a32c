"""FrequencyEstimator against a per-item loop of Yi et al.'s Algorithm 1, and on a Zipf stream."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.data.frequency import FrequencyEstimator

FAST = settings(max_examples=30, deadline=None)


def naive_stream(
    batches: list[list[int]],
    steps: list[int],
    *,
    num_buckets: int,
    alpha: float,
    initial_gap: float,
    bucket: object,
) -> tuple[list[int], list[float]]:
    """Algorithm 1 one item at a time; the c copies of a bucket in a batch share its gap."""
    a = [0] * num_buckets
    b = [initial_gap] * num_buckets
    for items, t in zip(batches, steps, strict=True):
        hs = [bucket(y) for y in items]  # type: ignore[operator]
        copies = Counter(hs)
        before = {h: a[h] for h in copies}
        for h in hs:
            b[h] = (1 - alpha) * b[h] + alpha * (t - before[h]) / copies[h]
            a[h] = t
    return a, b


def python_hash(y: int, h: int) -> int:
    """The documented hash, in Python integers (no overflow possible)."""
    p = 2**31 - 1
    return ((y % p) * 1_588_635_695 + 1_234_567_891) % p % h


@FAST
@given(
    data=st.data(),
    num_items=st.integers(1, 40),
    alpha=st.sampled_from([0.01, 0.1, 0.5, 1.0]),
    initial_gap=st.sampled_from([1.0, 7.5]),
    hashed=st.booleans(),
)
def test_update_matches_per_item_loop(
    data: st.DataObject, num_items: int, alpha: float, initial_gap: float, hashed: bool
) -> None:
    n_steps = data.draw(st.integers(1, 12))
    gaps = data.draw(st.lists(st.integers(1, 4), min_size=n_steps, max_size=n_steps))
    steps = list(np.cumsum(gaps).tolist())
    batches = [
        data.draw(st.lists(st.integers(0, num_items - 1), min_size=0, max_size=15))
        for _ in range(n_steps)
    ]
    buckets = max(1, num_items // 3) if hashed else num_items
    est = FrequencyEstimator(
        buckets,
        num_items=None if hashed else num_items,
        alpha=alpha,
        initial_gap=initial_gap,
    )
    assert est.identity is not hashed
    for items, t in zip(batches, steps, strict=True):
        est.update(torch.tensor(items, dtype=torch.int64), step=t)

    def bucket(y: int) -> int:
        return python_hash(y, buckets) if hashed else y

    a, b = naive_stream(
        batches, steps, num_buckets=buckets, alpha=alpha, initial_gap=initial_gap, bucket=bucket
    )
    assert est.last_seen.tolist() == a
    np.testing.assert_allclose(est.gap.numpy(), np.array(b), rtol=1e-12, atol=0)
    assert int(est.step) == steps[-1]


def test_hash_is_pinned_and_spreads_contiguous_ids() -> None:
    est = FrequencyEstimator(64)  # no num_items: hashed
    ids = torch.tensor([0, 1, 2, 10**12, 2**40 + 5])
    assert est.bucket(ids).tolist() == [python_hash(int(y), 64) for y in ids]
    counts = torch.bincount(est.bucket(torch.arange(64_000)), minlength=64)
    assert counts.min() > 900
    assert counts.max() < 1100


def test_identity_when_id_space_fits() -> None:
    est = FrequencyEstimator(100, num_items=10)
    assert est.identity
    assert est.num_buckets == 10
    assert est.gap.shape == (10,)
    assert est.bucket(torch.tensor([0, 9])).tolist() == [0, 9]
    assert not FrequencyEstimator(5, num_items=10).identity


def test_pinned_values_and_log_q_sign() -> None:
    """An item seen every 4 steps converges to B = 4, log q = log(1/4)."""
    est = FrequencyEstimator(8, num_items=8, alpha=0.5, initial_gap=1.0)
    for t in range(4, 4 * 60, 4):
        est.update(torch.tensor([2]), step=t)
    assert est.gap[2].item() == pytest.approx(4.0, abs=1e-9)
    assert est.log_q(torch.tensor([2])).item() == pytest.approx(math.log(0.25), abs=1e-6)
    assert est.probability(torch.tensor([2])).item() == pytest.approx(0.25)
    # an item seen 3 times in every batch converges to 3 occurrences per batch
    for t in range(4 * 60, 4 * 60 + 80):
        est.update(torch.tensor([5, 5, 5]), step=t)
    assert est.probability(torch.tensor([5])).item() == pytest.approx(3.0, rel=1e-6)


def test_log_q_is_clipped_and_float32() -> None:
    est = FrequencyEstimator(4, num_items=4, alpha=1.0, log_q_min=-2.0, log_q_max=1.0)
    est.update(torch.tensor([0] * 50), step=1)  # B = 1/50: log p = log 50 > 1
    est.update(torch.tensor([1]), step=1000)  # B = 1000: log p < -2
    out = est.log_q(torch.tensor([[0, 1]]))
    assert out.dtype == torch.float32
    assert out.shape == (1, 2)
    assert out.tolist() == [[1.0, -2.0]]
    assert est(torch.tensor([0])).tolist() == [1.0]


def test_state_dict_round_trip_resumes_identically() -> None:
    rng = np.random.default_rng(0)
    stream = [torch.from_numpy(rng.integers(0, 50, size=16)) for _ in range(20)]
    full = FrequencyEstimator(32, alpha=0.1)
    for t, items in enumerate(stream, start=1):
        full.update(items, step=t)
    first = FrequencyEstimator(32, alpha=0.1)
    for t, items in enumerate(stream[:10], start=1):
        first.update(items, step=t)
    resumed = FrequencyEstimator(32, alpha=0.1)
    resumed.load_state_dict(first.state_dict())
    for t, items in enumerate(stream[10:], start=11):
        resumed.update(items, step=t)
    assert set(resumed.state_dict()) == {"last_seen", "gap", "step"}
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    with pytest.raises(ValueError, match=r"expected step > 20"):
        resumed.update(stream[0], step=20)


def test_converges_to_zipf_frequencies() -> None:
    """Stationary Zipf(1.1) stream over 2000 items, 256 draws per step, 3000 steps."""
    n_items, batch, n_steps, s = 2000, 256, 3000, 1.1
    ranks = np.arange(1, n_items + 1)
    q = ranks**-s / np.sum(ranks**-s)  # true per-draw probability
    rng = np.random.default_rng(0)
    draws = torch.from_numpy(rng.choice(n_items, size=(n_steps, batch), p=q))
    est = FrequencyEstimator(4096, num_items=n_items, alpha=0.02)
    mean_gap = np.zeros(n_items)
    for t in range(n_steps):
        est.update(draws[t], step=t + 1)
        if t >= 2000:
            mean_gap += est.gap.numpy() / (n_steps - 2000)
    expected = batch * q  # occurrences per batch: head items far above 1
    got = est.probability(torch.arange(n_items)).numpy()

    head = expected >= 0.05  # seen at least every 20 steps on average
    assert head.sum() > 300
    corr = np.corrcoef(np.log(got[head]), np.log(expected[head]))[0, 1]
    assert corr > 0.98
    # The last estimate is noisy (relative spread about sqrt(alpha / 2) = 0.1) ...
    assert np.max(np.abs(got[:20] / expected[:20] - 1)) < 0.4
    # ... but unbiased: its time average sits on the truth, with no saturation at 1.
    relative = 1 / mean_gap / expected - 1
    assert np.max(np.abs(relative[:20])) < 0.08
    assert abs(np.mean(relative[:100])) < 0.01
    assert 1 / mean_gap[0] == pytest.approx(expected[0], rel=0.03)  # about 43 per batch


def test_errors_say_expected_and_got() -> None:
    with pytest.raises(ValueError, match=r"expected num_buckets an int >= 1, got 0"):
        FrequencyEstimator(0)
    with pytest.raises(ValueError, match=r"expected alpha in \(0, 1\], got 0.0"):
        FrequencyEstimator(4, alpha=0.0)
    with pytest.raises(ValueError, match=r"expected initial_gap > 0 and finite, got -1"):
        FrequencyEstimator(4, initial_gap=-1.0)
    with pytest.raises(ValueError, match=r"expected log_q_min < log_q_max, got 1.0 and 1.0"):
        FrequencyEstimator(4, log_q_min=1.0, log_q_max=1.0)
    est = FrequencyEstimator(4, num_items=4)
    with pytest.raises(ValueError, match=r"expected item ids \[0, 3\], got ids in \[0, 4\]"):
        est.update(torch.tensor([0, 4]), step=1)
    with pytest.raises(ValueError, match=r"expected item ids >= 0, got ids in \[-1, 2\]"):
        FrequencyEstimator(4).log_q(torch.tensor([-1, 2]))
    with pytest.raises(ValueError, match=r"expected integer item_ids, got torch.float32"):
        est.log_q(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"expected step > 0 \(the last update\), got 0"):
        est.update(torch.tensor([1]), step=0)
    with pytest.raises(ValueError, match=r"expected an int step, got 1.0"):
        est.update(torch.tensor([1]), step=1.0)  # type: ignore[arg-type]
