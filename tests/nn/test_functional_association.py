"""Condition association: arg-max (Eq. 8) and straight-through Gumbel softmax (Section 3.2.4)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.nn.functional import Association, argmax_association, gumbel_association

FAST = settings(max_examples=25, deadline=None)


def random_users(
    seed: int, b: int = 4, k: int = 3, d: int = 5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`[B, K, D]` users, `[B, D]` targets and a `[B, K]` slot mask with one real slot or more."""
    gen = torch.Generator().manual_seed(seed)
    user = torch.randn(b, k, d, generator=gen, dtype=torch.float64)
    target = torch.randn(b, d, generator=gen, dtype=torch.float64)
    slot_mask = torch.rand(b, k, generator=gen) < 0.7
    slot_mask[torch.arange(b), torch.randint(k, (b,), generator=gen)] = True
    return user, target, slot_mask


def reference_argmax(
    user: torch.Tensor, target: torch.Tensor, slot_mask: torch.Tensor
) -> list[int]:
    """Eq. 8 with loops: the real slot of highest dot product (the first one on ties)."""
    best = []
    for b in range(user.shape[0]):
        real = [j for j in range(user.shape[1]) if slot_mask[b, j]]
        scores = {
            j: sum(float(user[b, j, x] * target[b, x]) for x in range(user.shape[2])) for j in real
        }
        best.append(max(real, key=lambda j: scores[j]))
    return best


def test_argmax_matches_reference() -> None:
    user, target, slot_mask = random_users(0, b=12)
    got = argmax_association(user, target, slot_mask)
    expected = torch.tensor(reference_argmax(user, target, slot_mask))
    assert torch.equal(got.slot, expected)
    assert torch.equal(got.embedding, user[torch.arange(12), expected])
    assert torch.equal(got.probs, torch.nn.functional.one_hot(expected, 3).double())


def test_argmax_without_mask_and_ties_pick_the_lowest_slot() -> None:
    user = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    got = argmax_association(user, torch.tensor([[1.0, 0.0]]))
    assert got.slot.tolist() == [0]


def test_argmax_gradient_reaches_only_the_selected_slot() -> None:
    user, target, _ = random_users(1)
    user.requires_grad_()
    got = argmax_association(user, target)
    got.embedding.sum().backward()
    assert user.grad is not None
    selected = torch.nn.functional.one_hot(got.slot, 3).bool()
    assert torch.all(user.grad[selected] == 1)
    assert torch.all(user.grad[~selected] == 0)


@FAST
@given(seed=st.integers(0, 2**31 - 1))
def test_argmax_permuting_the_batch_permutes_the_output(seed: int) -> None:
    user, target, slot_mask = random_users(seed)
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(seed))
    base = argmax_association(user, target, slot_mask)
    permuted = argmax_association(user[perm], target[perm], slot_mask[perm])
    for got, want in zip(permuted, base, strict=True):
        assert torch.equal(got, want[perm])


@FAST
@given(seed=st.integers(0, 2**31 - 1), extra=st.integers(1, 3))
def test_argmax_appending_masked_slots_changes_nothing(seed: int, extra: int) -> None:
    user, target, slot_mask = random_users(seed)
    loud = 1e6 * target.unsqueeze(1).expand(-1, extra, -1)  # would win every affinity
    base = argmax_association(user, target, slot_mask)
    padded = argmax_association(
        torch.cat([user, loud], dim=1),
        target,
        torch.cat([slot_mask, torch.zeros(4, extra, dtype=torch.bool)], dim=1),
    )
    assert torch.equal(padded.slot, base.slot)
    assert torch.equal(padded.embedding, base.embedding)


def gumbel(
    user: torch.Tensor,
    target: torch.Tensor,
    seed: int,
    tau: float = 0.7,
    slot_mask: torch.Tensor | None = None,
) -> Association:
    gen = torch.Generator().manual_seed(seed)
    return gumbel_association(user, target, tau=tau, generator=gen, slot_mask=slot_mask)


@FAST
@given(seed=st.integers(0, 2**31 - 1), tau=st.sampled_from([0.1, 0.5, 1.0, 5.0]))
def test_gumbel_forward_is_exactly_one_real_slot(seed: int, tau: float) -> None:
    user, target, slot_mask = random_users(seed)
    got = gumbel(user, target, seed, tau, slot_mask)
    assert torch.all(slot_mask[torch.arange(4), got.slot]), "a masked slot was selected"
    assert torch.equal(got.embedding, user[torch.arange(4), got.slot])
    torch.testing.assert_close(got.probs.sum(dim=-1), torch.ones(4, dtype=torch.float64))
    assert torch.all(got.probs[~slot_mask] == 0)
    assert torch.equal(got.slot, got.probs.argmax(dim=-1))


def test_gumbel_is_deterministic_given_the_generator() -> None:
    user, target, slot_mask = random_users(2, b=32)
    first, again = (
        gumbel(user, target, 4, slot_mask=slot_mask),
        gumbel(user, target, 4, slot_mask=slot_mask),
    )
    assert torch.equal(first.slot, again.slot)
    assert torch.equal(first.probs, again.probs)
    assert not torch.equal(first.slot, gumbel(user, target, 5, slot_mask=slot_mask).slot)


@pytest.mark.parametrize("tau", [0.3, 3.0])
def test_gumbel_selection_follows_softmax_of_affinities(tau: float) -> None:
    # Gumbel-max: argmax_j (a_j + g_j) is a draw from softmax(a), whatever tau.
    rows = 20000
    user = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [9.0, 9.0]]]).expand(rows, 4, 2)
    target = torch.tensor([[0.3, 1.2]]).expand(rows, 2)
    slot_mask = torch.tensor([[True, True, True, False]]).expand(rows, 4)
    got = gumbel(user, target, 0, tau, slot_mask)
    share = torch.bincount(got.slot, minlength=4) / rows
    affinity = torch.tensor([0.3, 1.2, 0.75])
    expected = torch.cat([affinity.exp() / affinity.exp().sum(), torch.zeros(1)])
    torch.testing.assert_close(share, expected, atol=0.015, rtol=0)


def test_gumbel_soft_probabilities_gradcheck() -> None:
    user, target, slot_mask = random_users(3, b=2, k=3, d=3)
    user.requires_grad_()
    target.requires_grad_()

    def probs(user: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gumbel(user, target, 11, 0.8, slot_mask).probs  # same noise on every call

    assert torch.autograd.gradcheck(probs, (user, target))


def test_gumbel_straight_through_gradient_is_hard_forward_plus_soft_backward() -> None:
    # The straight-through Jacobian equals that of h(u, t) = sum_j (hard_j u_j + p_j(u, t) u0_j),
    # with the hard choice and u0 frozen at the evaluation point; check it by central differences.
    user, target, slot_mask = random_users(4, b=2, k=3, d=2)
    seed, tau = 12, 0.9
    base = gumbel(user, target, seed, tau, slot_mask)
    hard = torch.nn.functional.one_hot(base.slot, 3).double()

    def surrogate(u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        p = gumbel(u, t, seed, tau, slot_mask).probs
        return torch.einsum("bk,bkd->bd", hard, u) + torch.einsum("bk,bkd->bd", p, user)

    def embedding(u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return gumbel(u, t, seed, tau, slot_mask).embedding

    analytic = torch.autograd.functional.jacobian(embedding, (user, target))
    step = 1e-6
    for which, point in enumerate((user, target)):
        numeric = torch.zeros(2, 2, *point.shape, dtype=torch.float64)
        for flat in range(point.numel()):
            bump = torch.zeros(point.numel(), dtype=torch.float64)
            bump[flat] = step
            bump = bump.view_as(point)
            args_up = [user, target]
            args_down = [user, target]
            args_up[which] = point + bump
            args_down[which] = point - bump
            diff = (surrogate(*args_up) - surrogate(*args_down)) / (2 * step)
            numeric.view(2, 2, -1)[:, :, flat] = diff
        torch.testing.assert_close(analytic[which], numeric, atol=1e-6, rtol=1e-5)


def test_gumbel_sends_gradient_to_every_real_slot() -> None:
    user, target, _ = random_users(5, b=3, k=4)
    slot_mask = torch.tensor([[True, True, True, False]] * 3)
    user.requires_grad_()
    got = gumbel(user, target, 0, 1.0, slot_mask)
    (got.embedding * target).sum().backward()
    assert user.grad is not None
    per_slot = user.grad.abs().sum(dim=-1)  # [B, K]
    assert torch.all(per_slot[:, :3] > 0)
    assert torch.all(per_slot[:, 3] == 0)


def test_error_messages_name_expected_and_got() -> None:
    user, target, slot_mask = random_users(6)
    slot_mask[2] = False
    with pytest.raises(
        ValueError,
        match=r"argmax_association: expected at least one real slot per row in slot_mask, "
        r"got rows with none: \[2\]",
    ):
        argmax_association(user, target, slot_mask)
    with pytest.raises(
        ValueError,
        match=r"argmax_association: expected target_emb of shape \[B, D\] with D = 5 "
        r"\(from user_emb\), got shape \[4, 3\]",
    ):
        argmax_association(user, target[:, :3])
    with pytest.raises(ValueError, match=r"gumbel_association: expected tau > 0 and finite, got 0"):
        gumbel_association(user, target, tau=0, generator=torch.Generator())
    with pytest.raises(TypeError, match=r"gumbel_association: expected generator to be a torch"):
        gumbel_association(user, target, tau=1.0, generator=None)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"expected slot_mask of dtype torch.bool, got torch.float64"
    ):
        gumbel_association(
            user, target, tau=1.0, generator=torch.Generator(), slot_mask=user[..., 0]
        )
