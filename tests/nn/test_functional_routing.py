"""Dynamic routing (Eq. 1, 2, 7) against loop references, its properties and its gradients."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from multiembed.nn.functional import (
    Routing,
    capsule_routing,
    significant_slots,
    single_assignment_routing,
    squash,
    weighted_centroids,
    weighted_means,
)

FAST = settings(max_examples=25, deadline=None)
ITERATIONS = [1, 2, 3, 5]
Route = Callable[..., Routing]


class Batch(NamedTuple):
    e: torch.Tensor  # [B, L, D]
    mask: torch.Tensor  # [B, L]
    centroids: torch.Tensor  # [B, K, D]
    slot_mask: torch.Tensor  # [B, K]


def random_batch(seed: int, b: int = 3, length: int = 6, k: int = 3, d: int = 4) -> Batch:
    """Random items with padding (row 0 has none, the last row may be all padding)."""
    gen = torch.Generator().manual_seed(seed)
    e = torch.randn(b, length, d, generator=gen, dtype=torch.float64)
    mask = torch.rand(b, length, generator=gen) < 0.7
    mask[0] = True
    centroids = torch.randn(b, k, d, generator=gen, dtype=torch.float64)
    slot_mask = torch.rand(b, k, generator=gen) < 0.8
    slot_mask[:, 0] = True
    return Batch(e, mask, centroids, slot_mask)


def reference_squash(v: np.ndarray) -> np.ndarray:
    norm = math.sqrt(sum(x * x for x in v))
    return v * 0.0 if norm == 0 else norm**2 / (1 + norm**2) * v / norm


def reference_routing(
    e: torch.Tensor,
    mask: torch.Tensor,
    init: torch.Tensor,
    iterations: int,
    *,
    single: bool,
    bilinear: torch.Tensor | None = None,
    slot_mask: torch.Tensor | None = None,
    cosine: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 1-2 (or Eq. 7 when `single`), one user, item and centroid at a time; with
    `cosine` the affinity is c_j^T u_i / ||c_j|| (0 for a zero centroid)."""
    e_np, mask_np, init_np = e.detach().numpy(), mask.numpy(), init.detach().numpy()
    b_size, length, _ = e_np.shape
    k = init_np.shape[1]
    slots = np.ones((b_size, k), bool) if slot_mask is None else slot_mask.numpy()
    all_centroids, all_weights = [], []
    for b in range(b_size):
        s = np.eye(e_np.shape[2]) if bilinear is None else bilinear.detach().numpy()
        u = [s.T @ e_np[b, i] for i in range(length)]  # the paper's S e_i
        c = [init_np[b, j].copy() for j in range(k)]
        real = [j for j in range(k) if slots[b, j]]
        w = np.zeros((length, k))
        for _ in range(iterations):
            w = np.zeros((length, k))
            for i in range(length):
                if not mask_np[b, i] or not real:
                    continue
                logit = {j: float(c[j] @ u[i]) for j in real}
                if cosine:
                    norms = {j: math.sqrt(float(c[j] @ c[j])) for j in real}
                    logit = {j: logit[j] / norms[j] if norms[j] > 0 else 0.0 for j in real}
                total = sum(math.exp(logit[j]) for j in real)
                best = max(real, key=lambda j: logit[j])  # first maximum: lowest slot
                for j in real:
                    if not single or j == best:
                        w[i, j] = math.exp(logit[j]) / total
            c = [reference_squash(sum(w[i, j] * u[i] for i in range(length))) for j in range(k)]
        all_centroids.append(np.stack(c))
        all_weights.append(w)
    return np.stack(all_centroids), np.stack(all_weights)


def check_against_reference(routing: Routing, expected: tuple[np.ndarray, np.ndarray]) -> None:
    centroids, weights = (torch.from_numpy(x) for x in expected)
    torch.testing.assert_close(routing.centroids, centroids)
    torch.testing.assert_close(routing.weights, weights)
    torch.testing.assert_close(routing.importance, weights.sum(dim=1))


@pytest.mark.parametrize("iterations", ITERATIONS)
def test_capsule_routing_matches_reference(iterations: int) -> None:
    batch = random_batch(iterations)
    bilinear = torch.randn(4, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    init = torch.randn(3, 3, 5, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    routing = capsule_routing(batch.e, batch.mask, init, iterations=iterations, bilinear=bilinear)
    expected = reference_routing(
        batch.e, batch.mask, init, iterations, single=False, bilinear=bilinear
    )
    check_against_reference(routing, expected)


@pytest.mark.parametrize("iterations", ITERATIONS)
def test_capsule_routing_without_bilinear_and_with_slot_mask(iterations: int) -> None:
    batch = random_batch(10 + iterations)
    routing = capsule_routing(
        batch.e, batch.mask, batch.centroids, iterations=iterations, slot_mask=batch.slot_mask
    )
    expected = reference_routing(
        batch.e, batch.mask, batch.centroids, iterations, single=False, slot_mask=batch.slot_mask
    )
    check_against_reference(routing, expected)


@pytest.mark.parametrize("iterations", ITERATIONS)
def test_single_assignment_routing_matches_reference(iterations: int) -> None:
    batch = random_batch(20 + iterations)
    routing = single_assignment_routing(
        batch.e, batch.mask, batch.centroids, iterations=iterations, slot_mask=batch.slot_mask
    )
    expected = reference_routing(
        batch.e, batch.mask, batch.centroids, iterations, single=True, slot_mask=batch.slot_mask
    )
    check_against_reference(routing, expected)


@pytest.mark.parametrize("iterations", ITERATIONS)
@pytest.mark.parametrize("single", [True, False])
def test_cosine_affinity_matches_reference(iterations: int, single: bool) -> None:
    batch = random_batch(40 + iterations)
    route = single_assignment_routing if single else capsule_routing
    routing = route(
        batch.e,
        batch.mask,
        batch.centroids,
        iterations=iterations,
        slot_mask=batch.slot_mask,
        affinity="cosine",
    )
    expected = reference_routing(
        batch.e,
        batch.mask,
        batch.centroids,
        iterations,
        single=single,
        slot_mask=batch.slot_mask,
        cosine=True,
    )
    check_against_reference(routing, expected)


def test_cosine_affinity_keeps_a_light_cluster_that_dot_lets_the_heavy_one_absorb() -> None:
    # twelve items near (1, 0.3), one on the diagonal (0.5, 0.5) and one near (0.2, 0.6),
    # seeded from the item at index 0 and the one at index 12 (farthest-point style).
    # After one round the heavy centroid has norm ~1 and the light one ~0.4, so under
    # "dot" the heavy one outbids the light one for the diagonal item and, next round,
    # for the light seed itself; "cosine" reads directions and keeps both clusters.
    heavy = [[1.0, 0.3 + 0.01 * i] for i in range(12)]
    e = torch.tensor([[*heavy, [0.2, 0.6], [0.5, 0.5]]], dtype=torch.float64)
    mask = torch.ones(1, 14, dtype=torch.bool)
    init = e[:, [0, 12]]
    dot = single_assignment_routing(e, mask, init, iterations=3)
    cos = single_assignment_routing(e, mask, init, iterations=3, affinity="cosine")
    assert (dot.importance[0] > 0).tolist() == [True, False]
    assert (cos.importance[0] > 0).tolist() == [True, True]
    assert (cos.weights[0, 12:] > 0).int().tolist() == [[0, 1], [0, 1]]


def test_affinity_must_be_dot_or_cosine() -> None:
    batch = random_batch(0)
    with pytest.raises(ValueError, match=r"affinity in \['dot', 'cosine'\], got 'cos'"):
        single_assignment_routing(
            batch.e, batch.mask, batch.centroids, iterations=1, affinity="cos"
        )


def test_capsule_weights_sum_to_one_per_real_item_and_vanish_on_padding() -> None:
    batch = random_batch(30, b=4, length=7)
    routing = capsule_routing(batch.e, batch.mask, batch.centroids, iterations=3)
    per_item = routing.weights.sum(dim=-1)
    torch.testing.assert_close(per_item, batch.mask.to(per_item.dtype))


def test_single_assignment_keeps_exactly_one_slot_per_item_even_on_ties() -> None:
    e = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mask = torch.ones(2, 5, dtype=torch.bool)
    same = e[:, :1].expand(2, 3, 3)  # three identical centroids: every affinity ties
    routing = single_assignment_routing(e, mask, same, iterations=1)
    assert torch.equal((routing.weights > 0).sum(dim=-1), torch.ones(2, 5, dtype=torch.long))
    assert torch.equal(routing.weights[..., 1:], torch.zeros(2, 5, 2, dtype=torch.float64))
    torch.testing.assert_close(routing.weights[..., 0], torch.full((2, 5), 1 / 3).double())


@pytest.mark.parametrize("route", [capsule_routing, single_assignment_routing])
def test_masked_slots_get_zero_weight_importance_and_centroid(route: Route) -> None:
    batch = random_batch(31, b=3, length=6, k=4)
    slot_mask = torch.tensor([[True, False, True, False]] * 3)
    routing = route(batch.e, batch.mask, batch.centroids, iterations=2, slot_mask=slot_mask)
    assert torch.all(routing.weights[..., ~slot_mask[0]] == 0)
    assert torch.all(routing.importance[:, ~slot_mask[0]] == 0)
    assert torch.all(routing.centroids[:, ~slot_mask[0]] == 0)


@pytest.mark.parametrize("route", [capsule_routing, single_assignment_routing])
def test_all_padding_or_all_masked_rows_stay_finite(route: Route) -> None:
    batch = random_batch(32, b=2)
    mask = batch.mask.clone()
    mask[1] = False
    slot_mask = torch.ones(2, 3, dtype=torch.bool)
    slot_mask[0] = False
    routing = route(batch.e, mask, batch.centroids, iterations=3, slot_mask=slot_mask)
    assert torch.isfinite(routing.centroids).all()
    assert torch.all(routing.weights == 0)
    assert torch.all(routing.centroids == 0)


@FAST
@given(seed=st.integers(0, 2**31 - 1), iterations=st.sampled_from(ITERATIONS))
def test_permuting_the_batch_permutes_the_output(seed: int, iterations: int) -> None:
    batch = random_batch(seed, b=4)
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(seed))
    for route in (capsule_routing, single_assignment_routing):
        whole = route(batch.e, batch.mask, batch.centroids, iterations=iterations)
        permuted = route(
            batch.e[perm], batch.mask[perm], batch.centroids[perm], iterations=iterations
        )
        for got, want in zip(permuted, whole, strict=True):
            torch.testing.assert_close(got, want[perm])


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    extra=st.integers(1, 4),
    fill=st.sampled_from([0.0, 1e6, float("inf"), float("nan")]),
)
def test_appending_padding_changes_nothing(seed: int, extra: int, fill: float) -> None:
    batch = random_batch(seed)
    b, length, d = batch.e.shape
    e_padded = torch.cat([batch.e, torch.full((b, extra, d), fill, dtype=batch.e.dtype)], dim=1)
    mask_padded = torch.cat([batch.mask, torch.zeros(b, extra, dtype=torch.bool)], dim=1)
    bilinear = torch.randn(
        d, d, generator=torch.Generator().manual_seed(seed), dtype=e_padded.dtype
    )
    for route, kwargs in (
        (capsule_routing, {"bilinear": bilinear}),
        (single_assignment_routing, {}),
    ):
        base = route(batch.e, batch.mask, batch.centroids, iterations=3, **kwargs)
        padded = route(e_padded, mask_padded, batch.centroids, iterations=3, **kwargs)
        torch.testing.assert_close(padded.centroids, base.centroids)
        torch.testing.assert_close(padded.importance, base.importance)
        torch.testing.assert_close(padded.weights[:, :length], base.weights)
        assert torch.all(padded.weights[:, length:] == 0)


@pytest.mark.parametrize("iterations", ITERATIONS)
def test_capsule_routing_gradcheck(iterations: int) -> None:
    batch = random_batch(40 + iterations, b=2, length=4, k=2, d=3)
    e = batch.e.clone().requires_grad_()
    bilinear = torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bilinear.requires_grad_()
    init = batch.centroids.clone().requires_grad_()

    def run(
        e: torch.Tensor, bilinear: torch.Tensor, init: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        routing = capsule_routing(e, batch.mask, init, iterations=iterations, bilinear=bilinear)
        return routing.centroids, routing.weights

    assert torch.autograd.gradcheck(run, (e, bilinear, init))


@pytest.mark.parametrize("iterations", ITERATIONS)
@pytest.mark.parametrize("affinity", ["dot", "cosine"])
def test_single_assignment_routing_gradcheck(iterations: int, affinity: str) -> None:
    batch = random_batch(50 + iterations, b=2, length=4, k=2, d=3)
    e = batch.e.clone().requires_grad_()
    init = batch.centroids.clone().requires_grad_()

    def run(e: torch.Tensor, init: torch.Tensor) -> tuple[torch.Tensor, ...]:
        routing = single_assignment_routing(
            e, batch.mask, init, iterations=iterations, affinity=affinity
        )
        return routing.centroids, routing.weights

    assert torch.autograd.gradcheck(run, (e, init))


@pytest.mark.parametrize("iterations", ITERATIONS)
@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize("affinity", ["dot", "cosine"])
def test_one_centroid_is_the_iterated_routing_values_and_gradients(
    iterations: int, single: bool, affinity: str
) -> None:
    # one centroid takes every real item at weight 1, round after round: the
    # routing computes that one round (a row without its slot gets nothing)
    batch = random_batch(70 + iterations, k=1)
    slot_mask = batch.slot_mask.clone()
    slot_mask[-1] = False
    route = single_assignment_routing if single else capsule_routing

    def routed(e: torch.Tensor) -> Routing:
        return route(
            e,
            batch.mask,
            batch.centroids,
            iterations=iterations,
            slot_mask=slot_mask,
            affinity=affinity,
        )

    expected = reference_routing(
        batch.e,
        batch.mask,
        batch.centroids,
        iterations,
        single=single,
        slot_mask=slot_mask,
        cosine=affinity == "cosine",
    )
    check_against_reference(routed(batch.e), expected)
    e = batch.e.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda e: routed(e)[:2], (e,))


@pytest.mark.parametrize("iterations", ITERATIONS)
def test_gradients_reach_items_and_bilinear_at_every_iteration_count(iterations: int) -> None:
    batch = random_batch(60 + iterations)
    e = batch.e.clone().requires_grad_()
    bilinear = torch.eye(4, dtype=torch.float64).requires_grad_()
    capsule_routing(e, batch.mask, batch.centroids, iterations=iterations, bilinear=bilinear)[
        0
    ].sum().backward()
    assert e.grad is not None
    assert bilinear.grad is not None
    assert bool((e.grad[batch.mask].abs().sum(dim=-1) > 0).all())
    assert torch.all(e.grad[~batch.mask] == 0)
    assert bilinear.grad.abs().sum() > 0

    e.grad = None
    single_assignment_routing(e, batch.mask, batch.centroids, iterations=iterations)[
        0
    ].sum().backward()
    assert e.grad is not None
    assert bool((e.grad[batch.mask].abs().sum(dim=-1) > 0).all())


def test_routing_uses_squash_on_the_weighted_sum() -> None:
    # One item, one centroid: the weight is 1 and the centroid is squash(e).
    e = torch.tensor([[[3.0, 4.0]]])
    routing = single_assignment_routing(
        e, torch.ones(1, 1, dtype=torch.bool), torch.ones(1, 1, 2), iterations=1
    )
    torch.testing.assert_close(routing.centroids, squash(e))


def test_error_messages_name_expected_and_got() -> None:
    batch = random_batch(70, b=2, length=5)
    with pytest.raises(
        ValueError,
        match=r"capsule_routing: expected mask of shape \[B, L\] with L = 5 \(from e\), "
        r"got shape \[2, 4\]",
    ):
        capsule_routing(batch.e, batch.mask[:, :4], batch.centroids, iterations=1)
    with pytest.raises(
        ValueError, match=r"single_assignment_routing: expected mask of dtype torch.bool"
    ):
        single_assignment_routing(batch.e, batch.mask.double(), batch.centroids, iterations=1)
    with pytest.raises(ValueError, match=r"expected iterations to be an int >= 1, got 0"):
        capsule_routing(batch.e, batch.mask, batch.centroids, iterations=0)
    with pytest.raises(
        ValueError,
        match=r"capsule_routing: expected init_centroids of shape \[B, K, D_out\] "
        r"with D_out = 7 \(from bilinear\), got shape \[2, 3, 4\]",
    ):
        capsule_routing(
            batch.e,
            batch.mask,
            batch.centroids,
            iterations=1,
            bilinear=torch.zeros(4, 7, dtype=torch.float64),
        )
    with pytest.raises(
        ValueError,
        match=r"single_assignment_routing: expected slot_mask of shape \[B, K\], "
        r"got shape \[3\]",
    ):
        single_assignment_routing(
            batch.e,
            batch.mask,
            batch.centroids,
            iterations=1,
            slot_mask=torch.ones(3, dtype=torch.bool),
        )


@FAST
@given(seed=st.integers(0, 10_000), share=st.sampled_from([0.0, 0.1, 0.25, 0.5]))
def test_significant_slots_matches_a_loop(seed: int, share: float) -> None:
    g = torch.Generator().manual_seed(seed)
    b, k = 6, 5
    importance = torch.randint(0, 20, (b, k), generator=g).float()
    used = torch.rand(b, k, generator=g) < 0.7
    got = significant_slots(importance, used, share)
    for r in range(b):
        mass = [float(importance[r, j]) if used[r, j] else 0.0 for j in range(k)]
        total = sum(mass)
        top = max(range(k), key=lambda j: (mass[j], -j))  # the first largest, as argmax
        for j in range(k):
            want = bool(used[r, j]) and (mass[j] >= share * total or j == top)
            assert bool(got[r, j]) == want, (r, j, mass, share)


def test_significant_slots_keeps_the_largest_and_checks_its_arguments() -> None:
    importance = torch.tensor([[1.0, 1.0, 1.0, 97.0]])
    used = torch.ones(1, 4, dtype=torch.bool)
    assert significant_slots(importance, used, 0.5).tolist() == [[False, False, False, True]]
    assert significant_slots(importance, used, 0.0).tolist() == [[True] * 4]
    with pytest.raises(ValueError, match=r"expected min_share in \[0, 1\), got 1.0"):
        significant_slots(importance, used, 1.0)
    with pytest.raises(ValueError, match=r"expected slot_mask of dtype torch.bool"):
        significant_slots(importance, used.float(), 0.1)


def _means_reference(e: Tensor, mask: Tensor, weights: Tensor, item_w: Tensor) -> Tensor:
    """Loop form of `weighted_means`: sum_i b_ij w_i e_i / sum_i b_ij w_i per cluster."""
    b, length, _ = e.shape
    out = torch.zeros(b, weights.shape[2], e.shape[2], dtype=e.dtype)
    for row in range(b):
        real = [i for i in range(length) if mask[row, i]]
        for j in range(weights.shape[2]):
            total = torch.zeros(e.shape[2], dtype=e.dtype)
            weighed = 0.0
            for i in real:
                total = total + float(weights[row, i, j]) * float(item_w[row, i]) * e[row, i]
                weighed += float(weights[row, i, j]) * float(item_w[row, i])
            out[row, j] = total / weighed if weighed > 0 else total
    return out


def _weighted_reference(e: Tensor, mask: Tensor, weights: Tensor, item_w: Tensor) -> Tensor:
    """Loop form of `weighted_centroids`: squash(mass * weighted mean) per cluster."""
    means = _means_reference(e, mask, weights, item_w)
    out = torch.zeros_like(means)
    for row in range(e.shape[0]):
        for j in range(weights.shape[2]):
            mass = sum(float(weights[row, i, j]) for i in range(e.shape[1]) if mask[row, i])
            v = means[row, j] * mass
            norm = float(v.norm())
            out[row, j] = v * norm / (1 + norm**2) if norm > 0 else v
    return out


def _routed(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``e [3, 6, 4]`` (NaN at padding), ``mask`` (row 2 has no real item), routing weights."""
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(3, 6, 4, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 6, generator=g) > 0.3
    mask[2] = False  # no real item
    e[~mask] = float("nan")  # padding is never read
    weights = torch.rand(3, 6, 2, generator=g, dtype=torch.float64) * mask.unsqueeze(-1)
    return e, mask, weights


def test_weighted_centroids_match_a_loop_and_equal_weights_give_routing_centroids() -> None:
    e, mask, weights = _routed(5)
    item_w = torch.rand(3, 6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    item_w = item_w + 0.1
    item_w[~mask] = float("nan")  # nor are padded item weights
    got = weighted_centroids(e, mask, weights, item_w)
    torch.testing.assert_close(got, _weighted_reference(e, mask, weights, item_w.nan_to_num()))
    plain = squash(torch.einsum("blk,bld->bkd", weights, e.nan_to_num()))
    ones = torch.full((3, 6), 2.5, dtype=torch.float64)  # any equal weights
    torch.testing.assert_close(weighted_centroids(e, mask, weights, ones), plain)


def test_weighted_means_match_a_loop_and_sit_at_the_items_scale() -> None:
    e, mask, weights = _routed(7)
    item_w = torch.rand(3, 6, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    item_w = item_w + 0.1
    item_w[~mask] = float("nan")
    got = weighted_means(e, mask, weights, item_w)
    torch.testing.assert_close(got, _means_reference(e, mask, weights, item_w.nan_to_num()))
    assert not got[2].any()  # no real item: zero, not NaN
    one = torch.zeros(1, 3, 2, dtype=torch.float64)  # a cluster holding item 1 alone, weakly
    one[0, 1, 0] = 0.2
    items = torch.tensor([[[3.0, 4.0], [0.3, -0.4], [1.0, 1.0]]], dtype=torch.float64)
    alone = weighted_means(items, torch.ones(1, 3, dtype=torch.bool), one, torch.ones(1, 3))
    torch.testing.assert_close(alone[0, 0], items[0, 1])  # the item itself, whatever its mass


@pytest.mark.parametrize("routing", [single_assignment_routing, capsule_routing])
def test_routing_runs_under_bf16_autocast_with_a_masked_slot(routing: Route) -> None:
    """Under autocast the affinities are bf16, which float32's lowest value overflows."""
    g = torch.Generator().manual_seed(3)
    e, mask = torch.randn(2, 5, 4, generator=g), torch.ones(2, 5, dtype=torch.bool)
    slots = torch.tensor([[True, False], [True, True]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = routing(e, mask, e[:, :2], iterations=2, slot_mask=slots)
    assert torch.isfinite(out.centroids).all()
    assert not out.weights[0, :, 1].any()  # the masked slot takes no item


@pytest.mark.parametrize("route", [capsule_routing, single_assignment_routing])
def test_padding_zeroed_skips_only_the_zeroing(route: Route) -> None:
    """A caller that zeroed the padding once gets exactly the guarded result, values and
    gradients; the flag then trusts the caller (NaN padding reaches the output)."""
    batch = random_batch(11)
    e = batch.e.clone()
    e[~batch.mask] = float("nan")
    real = torch.where(batch.mask.unsqueeze(-1), e, 0.0).requires_grad_()
    guarded = route(e.requires_grad_(), batch.mask, batch.centroids, iterations=3)
    trusted = route(real, batch.mask, batch.centroids, iterations=3, padding_zeroed=True)
    for field in ("centroids", "weights", "importance"):
        torch.testing.assert_close(getattr(trusted, field), getattr(guarded, field), rtol=0, atol=0)
    guarded.centroids.sum().backward()
    trusted.centroids.sum().backward()
    assert e.grad is not None
    assert real.grad is not None
    torch.testing.assert_close(real.grad, e.grad, rtol=0, atol=0)
    unguarded = route(e.detach(), batch.mask, batch.centroids, iterations=3, padding_zeroed=True)
    assert unguarded.centroids.isnan().any()


def test_weighted_means_padding_zeroed_matches_the_guarded_means() -> None:
    e, mask, weights = _routed(9)
    item_w = torch.rand(3, 6, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    real = torch.where(mask.unsqueeze(-1), e, 0.0)
    trusted = weighted_means(real, mask, weights, item_w, padding_zeroed=True)
    torch.testing.assert_close(trusted, weighted_means(e, mask, weights, item_w), rtol=0, atol=0)
    trusted = weighted_centroids(real, mask, weights, item_w, padding_zeroed=True)
    guarded = weighted_centroids(e, mask, weights, item_w)
    torch.testing.assert_close(trusted, guarded, rtol=0, atol=0)
    assert weighted_means(e, mask, weights, item_w, padding_zeroed=True).isnan().any()
