"""Sampled softmax (Eq. 9): values pinned, logQ sign pinned, accidental hits, gradients."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from multiembed.nn.functional import (
    best_slot_scores,
    in_rows,
    sampled_softmax_logits,
    sampled_softmax_loss,
)

FAST = settings(max_examples=25, deadline=None)
Reduction = Literal["mean", "sum", "none"]


def random_batch(
    seed: int, b: int = 6, d: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Users, items, log q and item ids with duplicates (accidental hits)."""
    gen = torch.Generator().manual_seed(seed)
    user = torch.randn(b, d, generator=gen, dtype=torch.float64)
    item = torch.randn(b, d, generator=gen, dtype=torch.float64)
    log_q = torch.log(torch.rand(b, generator=gen, dtype=torch.float64) * 0.5 + 0.01)
    ids = torch.randint(0, max(2, b // 2), (b,), generator=gen)
    return user, item, log_q, ids


def reference_losses(
    user: torch.Tensor,
    item: torch.Tensor,
    log_q: torch.Tensor,
    temperature: float,
    ids: torch.Tensor | None,
    history: torch.Tensor | None = None,
) -> list[float]:
    """Eq. 9 row by row: -log softmax of (u_i . v_k / T - log q_k) over non-hit columns
    (and, with `history`, over columns whose item is not in row i's history)."""
    losses = []
    b, d = user.shape
    for i in range(b):
        logits = {}
        for k in range(b):
            if ids is not None and k != i and int(ids[k]) == int(ids[i]):
                continue  # an accidental hit is not a negative
            engaged = history is not None and int(ids[k]) in history[i].tolist()
            if ids is not None and k != i and engaged:
                continue  # nor is an item the user engaged
            dot = sum(float(user[i, x] * item[k, x]) for x in range(d))
            logits[k] = dot / temperature - float(log_q[k])
        total = sum(math.exp(value) for value in logits.values())
        losses.append(-(logits[i] - math.log(total)))
    return losses


@pytest.mark.parametrize("temperature", [1.0, 0.2])
@pytest.mark.parametrize("use_ids", [False, True])
def test_matches_reference(temperature: float, use_ids: bool) -> None:
    user, item, log_q, ids = random_batch(int(temperature * 10) + use_ids)
    ids_or_none = ids if use_ids else None
    expected = torch.tensor(reference_losses(user, item, log_q, temperature, ids_or_none))

    def loss(reduction: Reduction) -> torch.Tensor:
        return sampled_softmax_loss(
            user, item, log_q, temperature=temperature, item_ids=ids_or_none, reduction=reduction
        )

    torch.testing.assert_close(loss("none"), expected.double())
    torch.testing.assert_close(loss("mean"), expected.mean().double())
    torch.testing.assert_close(loss("sum"), expected.sum().double())


def test_pinned_values() -> None:
    # logits = [[1 + ln 2, ln 4], [ln 2, 1 + ln 4]]:
    # row 0: -log(2e / (2e + 4)) = log(1 + 2/e); row 1: -log(4e / (4e + 2)) = log(1 + 1/(2e)).
    eye = torch.eye(2, dtype=torch.float64)
    log_q = torch.log(torch.tensor([0.5, 0.25], dtype=torch.float64))
    logits = sampled_softmax_logits(eye, eye, log_q)
    ln2, ln4 = math.log(2), math.log(4)
    torch.testing.assert_close(
        logits, torch.tensor([[1 + ln2, ln4], [ln2, 1 + ln4]], dtype=torch.float64)
    )
    loss = sampled_softmax_loss(eye, eye, log_q, reduction="none")
    torch.testing.assert_close(
        loss, torch.tensor([0.5514447, 0.1688476], dtype=torch.float64), atol=1e-7, rtol=0
    )
    torch.testing.assert_close(
        loss,
        torch.tensor([math.log(1 + 2 / math.e), math.log(1 + 0.5 / math.e)], dtype=torch.float64),
    )


def test_logq_correction_is_subtracted_so_a_popular_target_costs_more() -> None:
    user, item, _, _ = random_batch(3, b=4)
    rare = torch.log(torch.tensor([0.001, 0.1, 0.1, 0.1], dtype=torch.float64))
    popular = torch.log(torch.tensor([0.9, 0.1, 0.1, 0.1], dtype=torch.float64))
    rare_logits = sampled_softmax_logits(user, item, rare)
    popular_logits = sampled_softmax_logits(user, item, popular)
    # Column 0 (item 0 everywhere) moves DOWN by log(0.9 / 0.001) when item 0 is popular.
    torch.testing.assert_close(
        rare_logits[:, 0] - popular_logits[:, 0],
        torch.full((4,), math.log(0.9 / 0.001), dtype=torch.float64),
    )
    torch.testing.assert_close(popular_logits[:, 1:], rare_logits[:, 1:])
    rare_loss = sampled_softmax_loss(user, item, rare, reduction="none")
    popular_loss = sampled_softmax_loss(user, item, popular, reduction="none")
    assert popular_loss[0] > rare_loss[0], "the popular positive's logit must be pushed down"
    assert torch.all(popular_loss[1:] < rare_loss[1:]), "a popular negative must count less"


def test_accidental_hit_is_not_a_negative() -> None:
    user, item, log_q, _ = random_batch(4, b=4)
    item[2] = item[0]  # item 0 appears twice in the batch
    ids = torch.tensor([10, 11, 10, 12])
    masked = sampled_softmax_logits(user, item, log_q, item_ids=ids)
    assert masked[0, 2] == float("-inf")
    assert masked[2, 0] == float("-inf")
    assert torch.isfinite(masked.diagonal()).all()
    assert torch.isfinite(masked[[1, 3]]).all()
    # Row 0's loss equals the loss over a batch with the duplicate column dropped.
    loss = sampled_softmax_loss(user, item, log_q, item_ids=ids, reduction="none")
    keep = [0, 1, 3]
    dropped = sampled_softmax_loss(user[keep], item[keep], log_q[keep], reduction="none")
    torch.testing.assert_close(loss[0], dropped[0])
    unmasked = sampled_softmax_loss(user, item, log_q, reduction="none")
    assert loss[0] < unmasked[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_history_items_are_not_negatives(seed: int) -> None:
    """Columns whose item is in the row's history leave that row's softmax; the row's
    own positive stays even when the user engaged it before; padding (-1) masks nothing."""
    user, item, log_q, ids = random_batch(seed, b=8)
    gen = torch.Generator().manual_seed(seed)
    history = torch.randint(-1, int(ids.max()) + 2, (8, 5), generator=gen)
    history[0, 0] = ids[0]  # a re-engagement: the positive is in its own history
    history[1] = -1  # a row with no history masks only accidental hits
    expected = torch.tensor(reference_losses(user, item, log_q, 0.2, ids, history))
    got = sampled_softmax_loss(
        user, item, log_q, temperature=0.2, item_ids=ids, history_ids=history, reduction="none"
    )
    torch.testing.assert_close(got, expected.double())
    plain = sampled_softmax_loss(user, item, log_q, temperature=0.2, item_ids=ids, reduction="none")
    torch.testing.assert_close(got[1], plain[1])
    logits = sampled_softmax_logits(user, item, log_q, item_ids=ids, history_ids=history)
    assert torch.isfinite(logits.diagonal()).all()
    with pytest.raises(ValueError, match="history_ids needs item_ids"):
        sampled_softmax_logits(user, item, log_q, history_ids=history)


@FAST
@given(
    ids=st.lists(st.integers(0, 20), min_size=1, max_size=12),
    rows=st.lists(st.lists(st.integers(-1, 20), min_size=0, max_size=6), min_size=1, max_size=5),
    width=st.integers(0, 6),
)
def test_in_rows_against_every_pair(ids: list[int], rows: list[list[int]], width: int) -> None:
    padded = torch.tensor([(r + [-1] * width)[:width] for r in rows], dtype=torch.long)
    padded = padded.reshape(len(rows), width)
    want = [[x in r.tolist() for x in ids] for r in padded]
    assert in_rows(torch.tensor(ids), padded).tolist() == want


@FAST
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 8))
def test_permuting_the_batch_permutes_the_losses(seed: int, b: int) -> None:
    user, item, log_q, ids = random_batch(seed, b=b)
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(seed))
    base = sampled_softmax_loss(user, item, log_q, item_ids=ids, reduction="none")
    permuted = sampled_softmax_loss(
        user[perm], item[perm], log_q[perm], item_ids=ids[perm], reduction="none"
    )
    torch.testing.assert_close(permuted, base[perm])


@FAST
@given(seed=st.integers(0, 2**31 - 1), shift=st.floats(-5, 5))
def test_a_constant_shift_of_log_q_changes_nothing(seed: int, shift: float) -> None:
    user, item, log_q, ids = random_batch(seed)
    base = sampled_softmax_loss(user, item, log_q, item_ids=ids, reduction="none")
    shifted = sampled_softmax_loss(user, item, log_q + shift, item_ids=ids, reduction="none")
    torch.testing.assert_close(shifted, base)


def test_temperature_divides_the_dot_products_only() -> None:
    user, item, log_q, _ = random_batch(5)
    cold = sampled_softmax_logits(user, item, log_q, temperature=0.5)
    torch.testing.assert_close(cold, 2 * (user @ item.T) - log_q)


def test_gradcheck() -> None:
    user, item, log_q, ids = random_batch(6, b=5, d=3)
    inputs = (user.requires_grad_(), item.requires_grad_(), log_q.requires_grad_())

    def loss(user: torch.Tensor, item: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        return sampled_softmax_loss(
            user, item, log_q, temperature=0.7, item_ids=ids, reduction="none"
        )

    assert torch.autograd.gradcheck(loss, inputs)


def test_error_messages_name_expected_and_got() -> None:
    user, item, log_q, ids = random_batch(7)
    with pytest.raises(
        ValueError, match=r"expected reduction in \('mean', 'sum', 'none'\), got 'max'"
    ):
        sampled_softmax_loss(user, item, log_q, reduction="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected temperature > 0 and finite, got -1"):
        sampled_softmax_loss(user, item, log_q, temperature=-1)
    with pytest.raises(
        ValueError,
        match=r"sampled_softmax_logits: expected item_log_q of shape \[N\] with N = 6 "
        r"\(from item_emb\), got shape \[5\]",
    ):
        sampled_softmax_loss(user, item, log_q[:5])
    with pytest.raises(
        ValueError, match=r"expected item_ids of an integer dtype, got torch.float64"
    ):
        sampled_softmax_loss(user, item, log_q, item_ids=ids.double())


@FAST
@given(seed=st.integers(0, 10_000), b=st.integers(1, 5), k=st.integers(1, 4), n=st.integers(1, 6))
def test_best_slot_scores_matches_a_loop(seed: int, b: int, k: int, n: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    users = torch.randn(b, k, 3, generator=gen, dtype=torch.float64)
    items = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    slot_mask = torch.rand(b, k, generator=gen) < 0.6
    slot_mask[:, torch.randint(0, k, (1,), generator=gen)] = True  # one used slot per row
    got = best_slot_scores(users, items, slot_mask)
    for i in range(b):
        for c in range(n):
            want = max(float(users[i, j] @ items[c]) for j in range(k) if slot_mask[i, j])
            assert float(got[i, c]) == pytest.approx(want, rel=1e-12)


@FAST
@given(seed=st.integers(0, 10_000), b=st.integers(1, 5), k=st.integers(1, 4), n=st.integers(1, 6))
def test_best_slot_scores_gradients_are_those_of_autograds_amax(
    seed: int, b: int, k: int, n: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    users = torch.randn(b, k, 3, generator=gen)
    users[:, -1] = users[:, 0]  # tied slots share the gradient, as amax does
    items = torch.randn(n, 3, generator=gen)
    slot_mask = torch.rand(b, k, generator=gen) < 0.6
    slot_mask[:, 0] = True
    upstream = torch.randn(b, n, generator=gen)

    def grads(score: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        u, i = users.clone().requires_grad_(), items.clone().requires_grad_()
        out = score(u, i)
        out.backward(upstream)
        assert u.grad is not None
        assert i.grad is not None
        return out.detach(), u.grad, i.grad

    def reference(u: Tensor, i: Tensor) -> Tensor:
        scores = u @ i.T
        return scores.masked_fill(~slot_mask.unsqueeze(-1), torch.finfo(u.dtype).min).amax(1)

    for got, want in zip(
        grads(lambda u, i: best_slot_scores(u, i, slot_mask)), grads(reference), strict=True
    ):
        assert torch.equal(got, want)


def test_loss_with_one_used_slot_is_the_loss_of_that_slot() -> None:
    user, item, log_q, ids = random_batch(3)
    noise = torch.randn(user.shape[0], 2, user.shape[1], dtype=torch.float64) * 10
    stacked = torch.cat((noise[:, :1], user.unsqueeze(1), noise[:, 1:]), dim=1)  # [B, 3, D]
    only_middle = torch.tensor([[False, True, False]]).expand(user.shape[0], 3)
    got = sampled_softmax_loss(stacked, item, log_q, item_ids=ids, slot_mask=only_middle)
    torch.testing.assert_close(got, sampled_softmax_loss(user, item, log_q, item_ids=ids))


def test_best_slot_scores_errors() -> None:
    users, items = torch.zeros(2, 3, 4), torch.zeros(5, 4)
    with pytest.raises(ValueError, match=r"expected at least one used slot per row"):
        best_slot_scores(users, items, torch.tensor([[True, False, False], [False] * 3]))
    with pytest.raises(ValueError, match=r"expected slot_mask of dtype torch.bool"):
        best_slot_scores(users, items, torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"expected item_emb of shape \[N, D\] with D = 4"):
        best_slot_scores(users, torch.zeros(5, 3), torch.ones(2, 3, dtype=torch.bool))


@FAST
@given(seed=st.integers(0, 10_000), start=st.integers(0, 5), b=st.integers(1, 6))
def test_a_slice_of_rows_scores_like_the_same_rows_of_the_whole_batch(
    seed: int, start: int, b: int
) -> None:
    """Rows start..start+b of a batch (one process's share) against all N columns."""
    user, item, log_q, ids = random_batch(seed, b=6)
    start, b = min(start, 5), min(b, 6 - min(start, 5))
    slots = torch.randn(6, 3, user.shape[1], dtype=torch.float64)
    mask = torch.tensor([[True, False, True]]).expand(6, 3)
    for u, m in ((user, None), (slots, mask)):
        whole = sampled_softmax_loss(u, item, log_q, item_ids=ids, slot_mask=m, reduction="none")
        part = sampled_softmax_loss(
            u[start : start + b],
            item,
            log_q,
            item_ids=ids,
            slot_mask=None if m is None else m[start : start + b],
            start=start,
            reduction="none",
        )
        torch.testing.assert_close(part, whole[start : start + b])


def test_positive_emb_scores_the_positive_and_the_best_slot_the_negatives() -> None:
    """A loop reference: row i's positive by positive_emb[i], every other column by the
    best used slot, logQ subtracted, accidental hits dropped."""
    gen = torch.Generator().manual_seed(7)
    users = torch.randn(5, 3, 4, generator=gen, dtype=torch.float64)
    item = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    log_q = torch.log(torch.rand(5, generator=gen, dtype=torch.float64) + 0.1)
    ids = torch.tensor([0, 1, 0, 2, 3])
    mask = torch.tensor([[True, True, False]] * 4 + [[False, True, True]])
    positive = users[torch.arange(5), torch.tensor([1, 0, 1, 0, 2])]  # not always the best
    got = sampled_softmax_loss(
        users,
        item,
        log_q,
        temperature=0.5,
        item_ids=ids,
        slot_mask=mask,
        positive_emb=positive,
        reduction="none",
    )
    want = []
    for i in range(5):
        logits = {}
        for c in range(5):
            if c != i and int(ids[c]) == int(ids[i]):
                continue
            if c == i:
                dot = float(positive[i] @ item[c])
            else:
                dot = max(float(users[i, j] @ item[c]) for j in range(3) if mask[i, j])
            logits[c] = dot / 0.5 - float(log_q[c])
        want.append(-(logits[i] - math.log(sum(math.exp(v) for v in logits.values()))))
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))


def test_start_and_positive_emb_errors() -> None:
    user, item, log_q, _ = random_batch(1, b=4)
    with pytest.raises(ValueError, match=r"expected start in \[0, N - B\] = \[0, 2\], got 3"):
        sampled_softmax_logits(user[:2], item, log_q, start=3)
    with pytest.raises(ValueError, match=r"positive_emb needs slot_mask"):
        sampled_softmax_logits(user, item, log_q, positive_emb=user)
