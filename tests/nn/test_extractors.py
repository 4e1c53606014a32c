"""Interest extractors: shapes, slot masks, determinism, equivariance, padding, references."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from multiembed.nn.extractors import (
    NO_TOPIC,
    CapsuleExtractor,
    Clustering,
    DCMExtractor,
    InterestExtractor,
    Interests,
    InterestTokenExtractor,
    SelfAttentionExtractor,
    SingleExtractor,
    SubsequenceExtractor,
    assign_topics,
    kmeans_topics,
)
from multiembed.nn.extractors._common import recency_attention_scores
from multiembed.nn.functional import (
    capsule_routing,
    gaussian_centroids,
    single_assignment_routing,
)

D, K, N_ITEMS, N_TOPICS = 6, 3, 30, 5
FAST = settings(max_examples=15, deadline=None)
ITEM_TOPICS = torch.arange(N_ITEMS) % N_TOPICS
ITEM_TOPICS[::7] = NO_TOPIC  # some items have no topic


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "single": lambda: SingleExtractor(dim=D),
    "mind": lambda: CapsuleExtractor(dim=D, k=K, generator=_gen()),
    "dcm": lambda: DCMExtractor(dim=D, k=K, generator=_gen()),
    "dcm_vanilla": lambda: DCMExtractor(
        dim=D, k=K, generator=_gen(), clustering=Clustering(routing=capsule_routing)
    ),
    "dcm_attention": lambda: DCMExtractor(
        dim=D, k=K, generator=_gen(), clustering=Clustering(pool="attention")
    ),
    "dcm_cosine": lambda: DCMExtractor(
        dim=D, k=K, generator=_gen(), clustering=Clustering(affinity="cosine")
    ),
    "dcm_gaussian": lambda: DCMExtractor(
        dim=D, k=K, generator=_gen(), clustering=Clustering(init="gaussian")
    ),
    "self_attention": lambda: SelfAttentionExtractor(dim=D, k=K),
    "interest_token": lambda: InterestTokenExtractor(dim=D, k=K),
    "pfs": lambda: SubsequenceExtractor(dim=D, k=K, item_topics=ITEM_TOPICS, n_topics=N_TOPICS),
}
NAMES = list(FACTORIES)


def make(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return FACTORIES[name]()


def sequences(seed: int, b: int = 4, length: int = 7) -> dict[str, Tensor]:
    """Random right-aligned sequences: row 1 has 2 items, row 2 (if any) none; some invalid."""
    g = _gen(seed)
    ids = torch.randint(0, N_ITEMS, (b, length), generator=g)
    ids[1, :-2] = -1
    if b > 2:
        ids[2] = -1
    mask = ids >= 0
    e = torch.randn(b, length, D, generator=g)
    e[~mask] = float("nan")  # padding values must never leak in
    valid = mask & (torch.rand(b, length, generator=g) > 0.2)
    return {"e": e, "mask": mask, "valid": valid, "item_ids": ids}


def run(extractor: nn.Module, inputs: dict[str, Tensor]) -> Interests:
    return extractor(inputs["e"], inputs["mask"], inputs["valid"], item_ids=inputs["item_ids"])


def assert_interests_equal(a: Interests, b: Interests, atol: float = 1e-6) -> None:
    torch.testing.assert_close(a.conditions, b.conditions, atol=atol, rtol=1e-5)
    assert torch.equal(a.slot_mask, b.slot_mask)
    torch.testing.assert_close(a.importance, b.importance, atol=atol, rtol=1e-5)


# ---------------------------------------------------------------- contract


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtypes_and_protocol(name: str) -> None:
    extractor = make(name)
    conforming: InterestExtractor = extractor  # type: ignore[assignment]
    k = conforming.k
    assert k == (1 if name == "single" else K)
    assert conforming.dim == D
    out = run(extractor, sequences(0))
    assert isinstance(out, Interests)
    assert out.conditions.shape == (4, k, D)
    assert out.slot_mask.shape == (4, k)
    assert out.slot_mask.dtype == torch.bool
    assert out.importance.shape == (4, k)
    assert out.importance.is_floating_point()
    assert torch.isfinite(out.conditions).all()
    assert torch.isfinite(out.importance).all()
    assert out.slot_mask.any(dim=1).all(), "every row keeps at least one slot"
    assert (out.importance >= 0).all()
    assert (out.importance[~out.slot_mask] == 0).all()


@pytest.mark.parametrize("name", ["mind", "dcm", "dcm_vanilla", "self_attention", "interest_token"])
def test_short_sequences_use_one_slot_per_item(name: str) -> None:
    out = run(make(name), sequences(0))
    if name.startswith("dcm"):
        # hard routing can leave a seeded cluster empty; it is then unused (no centroid)
        assert out.slot_mask[:2].tolist() == (out.importance[:2] > 0).tolist()
        assert out.slot_mask[0, 0]
        assert not out.slot_mask[1, 2]
    else:
        assert out.slot_mask[0].tolist() == [True, True, True]  # 7 items
        assert out.slot_mask[1].tolist() == [True, True, False]  # 2 items
    assert out.slot_mask[2].tolist() == [True, False, False]  # no item: slot 0 kept


@pytest.mark.parametrize("name", ["mind", "dcm", "dcm_vanilla", "self_attention", "pfs"])
def test_unused_slots_and_empty_rows_have_zero_conditions(name: str) -> None:
    out = run(make(name), sequences(0))
    assert (out.conditions[~out.slot_mask] == 0).all()
    assert (out.conditions[2] == 0).all()  # empty history
    assert (out.importance[2] == 0).all()


def test_single_extractor_is_one_always_used_slot() -> None:
    out = run(make("single"), sequences(0))
    assert out.slot_mask.all()
    assert (out.importance == 1).all()


@pytest.mark.parametrize("name", ["mind", "dcm_vanilla", "self_attention", "interest_token"])
def test_soft_importance_spreads_one_unit_per_real_item(name: str) -> None:
    inputs = sequences(1)
    out = run(make(name).eval(), inputs)
    torch.testing.assert_close(out.importance.sum(dim=1), inputs["mask"].sum(dim=1).float())


def test_dcm_importance_is_the_winning_softmax_mass() -> None:
    inputs = sequences(1)
    out = run(make("dcm").eval(), inputs)
    n_real = inputs["mask"].sum(dim=1).float()
    assert (out.importance.sum(dim=1) <= n_real + 1e-5).all()
    assert (out.importance.sum(dim=1)[n_real > 0] > 0).all()


# ------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", NAMES)
def test_eval_forward_is_deterministic(name: str) -> None:
    extractor = make(name).eval()
    inputs = sequences(2)
    first, second = run(extractor, inputs), run(extractor, inputs)
    assert torch.equal(first.conditions, second.conditions)
    assert torch.equal(first.importance, second.importance)


@pytest.mark.parametrize("name", ["mind", "dcm"])
def test_training_randomness_comes_from_the_generator_only(name: str) -> None:
    inputs = sequences(3)
    a, b = make(name).train(), make(name).train()  # same seeds, same generator seed
    first_a, first_b = run(a, inputs), run(b, inputs)
    assert torch.equal(first_a.conditions, first_b.conditions)
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(run(a, inputs).conditions, run(b, inputs).conditions)


def test_capsule_training_draws_fresh_centroids_each_call() -> None:
    extractor = make("mind").train()
    inputs = sequences(3)
    assert not torch.equal(run(extractor, inputs).conditions, run(extractor, inputs).conditions)


def test_capsule_eval_init_is_saved_with_the_weights() -> None:
    source = make("mind")
    target = CapsuleExtractor(dim=D, k=K, generator=_gen(99))
    assert not torch.equal(source.eval_init, target.eval_init)
    target.load_state_dict(source.state_dict())
    inputs = sequences(4)
    assert torch.equal(run(source.eval(), inputs).conditions, run(target.eval(), inputs).conditions)


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(seed=st.integers(0, 10_000))
def test_eval_is_batch_permutation_equivariant(name: str, seed: int) -> None:
    extractor = make(name).eval()
    inputs = sequences(seed, b=5)
    perm = torch.randperm(5, generator=_gen(seed))
    out = run(extractor, inputs)
    permuted = run(extractor, {key: v[perm] for key, v in inputs.items()})
    assert_interests_equal(permuted, Interests(*(t[perm] for t in out)))


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(seed=st.integers(0, 10_000), extra=st.integers(1, 4), left=st.booleans())
def test_padding_anywhere_changes_nothing(name: str, seed: int, extra: int, left: bool) -> None:
    extractor = make(name).eval()
    inputs = sequences(seed)
    b = inputs["e"].shape[0]
    pads = {
        "e": torch.full((b, extra, D), float("nan")),
        "mask": torch.zeros(b, extra, dtype=torch.bool),
        "valid": torch.ones(b, extra, dtype=torch.bool),  # must be ignored at padding
        "item_ids": torch.full((b, extra), -1),
    }
    padded = {
        key: torch.cat([pads[key], v] if left else [v, pads[key]], dim=1)
        for key, v in inputs.items()
    }
    assert_interests_equal(run(extractor, padded), run(extractor, inputs))


@pytest.mark.parametrize("name", NAMES)
def test_padding_zeroed_skips_only_the_zeroing(name: str) -> None:
    """Given ``e`` already zero at padding, ``padding_zeroed`` gives exactly the guarded
    interests and gradients; the flag then trusts the caller (NaN padding leaks in),
    except for the subsequence pool, which zeroes the items outside each topic anyway."""
    extractor = make(name).eval()
    inputs = sequences(3)
    mask = inputs["mask"]
    real = torch.where(mask.unsqueeze(-1), inputs["e"], 0.0).requires_grad_()
    e = inputs["e"].clone().requires_grad_()
    guarded = extractor(e, mask, inputs["valid"], item_ids=inputs["item_ids"])
    trusted = extractor(
        real, mask, inputs["valid"], item_ids=inputs["item_ids"], padding_zeroed=True
    )
    for got, want in zip(trusted, guarded, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    (guarded.conditions * guarded.importance.unsqueeze(-1)).sum().backward()
    (trusted.conditions * trusted.importance.unsqueeze(-1)).sum().backward()
    assert e.grad is not None
    assert real.grad is not None
    torch.testing.assert_close(real.grad[mask], e.grad[mask], rtol=0, atol=0)
    unguarded = extractor(
        inputs["e"], mask, inputs["valid"], item_ids=inputs["item_ids"], padding_zeroed=True
    )
    assert unguarded.conditions.isnan().any() == (name != "pfs")


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name: str) -> None:
    extractor = make(name).double().eval()
    inputs = sequences(5, b=2, length=4)
    inputs["e"] = torch.randn(2, 4, D, dtype=torch.float64, generator=_gen(5))
    inputs["mask"][1] = torch.tensor([False, True, True, True])
    inputs["item_ids"][1, 1:] = torch.tensor([1, 2, 3])
    e = inputs["e"].requires_grad_()

    def conditions(x: Tensor) -> Tensor:
        return extractor(x, inputs["mask"], inputs["valid"], item_ids=inputs["item_ids"])[0]

    assert torch.autograd.gradcheck(conditions, (e,), eps=1e-6, atol=1e-5)


# --------------------------------------------------------------- references


def test_self_attention_matches_a_loop_reference() -> None:
    extractor = make("self_attention").double().eval()
    inputs = sequences(6)
    e = inputs["e"].double()
    out = extractor(e, inputs["mask"], inputs["valid"])
    w1, b1 = extractor.w1.weight.detach().numpy(), extractor.w1.bias.detach().numpy()
    w2 = extractor.w2.weight.detach().numpy()
    for row in range(e.shape[0]):
        real = inputs["mask"][row].numpy()
        h = e[row].numpy()[real]  # [n, D]
        for head in range(K):
            if not out.slot_mask[row, head]:
                continue
            scores = np.array([w2[head] @ np.tanh(w1 @ x + b1) for x in h])
            if len(scores) == 0:
                expected = np.zeros(D)
            else:
                a = np.exp(scores - scores.max())
                expected = (a / a.sum()) @ h
            np.testing.assert_allclose(out.conditions[row, head].detach().numpy(), expected)


def test_subsequences_match_a_loop_reference() -> None:
    extractor = make("pfs").double().eval()
    inputs = sequences(7, b=6, length=12)
    e = inputs["e"].double()
    out = extractor(e, inputs["mask"], inputs["valid"], item_ids=inputs["item_ids"])
    table = extractor.topic_table.weight.detach().numpy()

    def mlp(x: np.ndarray) -> np.ndarray:
        w1, b1 = extractor.mlp1.weight.detach().numpy(), extractor.mlp1.bias.detach().numpy()
        w2, b2 = extractor.mlp2.weight.detach().numpy(), extractor.mlp2.bias.detach().numpy()
        h = w1 @ x + b1
        return w2 @ (0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))) + b2

    for row in range(e.shape[0]):
        groups: dict[int, list[np.ndarray]] = {}
        for pos in range(e.shape[1]):
            item = int(inputs["item_ids"][row, pos])
            if item < 0 or not inputs["valid"][row, pos] or ITEM_TOPICS[item] < 0:
                continue
            groups.setdefault(int(ITEM_TOPICS[item]), []).append(e[row, pos].numpy())
        ranked = sorted(groups, key=lambda t: (-len(groups[t]), t))[:K]
        for slot in range(K):
            if slot < len(ranked):
                t = ranked[slot]
                mean = np.mean(groups[t], axis=0)
                expected = mean + mlp(mean) + table[t]
                assert out.slot_mask[row, slot]
                assert out.importance[row, slot] == len(groups[t])
                np.testing.assert_allclose(out.conditions[row, slot].detach().numpy(), expected)
            else:
                assert out.importance[row, slot] == 0
                assert out.slot_mask[row, slot] == (slot == 0 and not ranked)


def test_dcm_uses_the_injected_routing() -> None:
    inputs = sequences(8)
    calls: list[str] = []

    def spy(*args: Tensor, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append("called")
        return single_assignment_routing(*args, **kwargs)  # type: ignore[arg-type]

    dcm = DCMExtractor(dim=D, k=K, generator=_gen(), clustering=Clustering(routing=spy)).eval()
    assert torch.equal(run(dcm, inputs).conditions, run(make("dcm").eval(), inputs).conditions)
    assert calls == ["called"]
    vanilla = run(make("dcm_vanilla").eval(), inputs)
    assert not torch.equal(vanilla.conditions, run(dcm, inputs).conditions)


@pytest.mark.parametrize("validity_aware", [True, False])
def test_dcm_passes_validity_to_the_initialisation_only_when_aware(
    validity_aware: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiembed.nn.extractors.dcm as dcm_module

    seen: list[Tensor | None] = []
    real_init = dcm_module.farthest_point_init

    def spy(e: Tensor, mask: Tensor, k: int, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(kwargs["valid"])  # type: ignore[arg-type]
        return real_init(e, mask, k, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dcm_module, "farthest_point_init", spy)
    inputs = sequences(9)
    dcm = DCMExtractor(
        dim=D, k=K, generator=_gen(), clustering=Clustering(validity_aware=validity_aware)
    ).eval()
    run(dcm, inputs)
    if validity_aware:
        assert torch.equal(seen[0], inputs["valid"] & inputs["mask"])  # type: ignore[arg-type]
    else:
        assert seen == [None]


def test_dcm_gaussian_init_starts_routing_from_minds_centroids() -> None:
    """Table 6 without VA-FPI: routing starts from N(0, 1) centroids (a fixed draw in
    eval, fresh ones per sequence in training), never from farthest point seeds."""
    inputs = sequences(10)
    calls: list[Tensor] = []

    def spy(e: Tensor, mask: Tensor, init: Tensor, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(init.clone())
        return single_assignment_routing(e, mask, init, **kwargs)  # type: ignore[arg-type]

    dcm = DCMExtractor(
        dim=D, k=K, generator=_gen(3), clustering=Clustering(init="gaussian", routing=spy)
    )
    want = gaussian_centroids(1, K, D, generator=_gen(3))[0]
    torch.testing.assert_close(dcm.eval_init, want)
    out = run(dcm.eval(), inputs)
    b = inputs["e"].shape[0]
    torch.testing.assert_close(calls[-1], want.expand(b, K, D))
    n_real = inputs["mask"].sum(dim=1)
    assert (out.slot_mask.sum(dim=1) <= n_real.clamp(1, K)).all()
    run(dcm.train(), inputs)
    first = calls[-1]
    assert not torch.equal(first[0], first[1])  # fresh per sequence
    assert "eval_init" in dcm.state_dict()
    assert "eval_init" not in DCMExtractor(dim=D, k=K, generator=_gen()).state_dict()
    with pytest.raises(ValueError, match=r"init = 'uniform': must be one of"):
        DCMExtractor(dim=D, k=K, generator=_gen(), clustering=Clustering(init="uniform"))  # type: ignore[arg-type]


# ------------------------------------------------------------------ topics


def test_kmeans_topics_recovers_clusters_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 10
    vectors = np.concatenate([c + rng.normal(size=(40, 8)) for c in centres])
    first, again = kmeans_topics(vectors, 4, seed=3), kmeans_topics(vectors, 4, seed=3)
    assert first.shape == (4, 8)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    topics = assign_topics(vectors, first)
    for block in range(4):  # each true cluster lands in one topic, all topics distinct
        assert len(set(topics[block * 40 : (block + 1) * 40].tolist())) == 1
    assert len(set(topics.tolist())) == 4


def test_assign_topics_matches_brute_force_and_skips_absent() -> None:
    rng = np.random.default_rng(1)
    vectors, centroids = rng.normal(size=(50, 3)), rng.normal(size=(6, 3))
    present = rng.random(50) > 0.2
    vectors[~present] = np.nan
    topics = assign_topics(vectors, centroids, present)
    for i in range(50):
        if present[i]:
            distances = [float(np.sum((vectors[i] - c) ** 2)) for c in centroids]
            assert topics[i] == int(np.argmin(distances))
        else:
            assert topics[i] == NO_TOPIC


def test_topic_function_errors_say_expected_and_got() -> None:
    with pytest.raises(ValueError, match=r"expected at least n_topics = 5 vectors, got 3"):
        kmeans_topics(np.zeros((3, 2)), 5, seed=0)
    with pytest.raises(ValueError, match=r"expected vectors of shape \[C, V\], got \[3\]"):
        kmeans_topics(np.zeros(3), 2, seed=0)
    with pytest.raises(ValueError, match="expected finite vectors"):
        kmeans_topics(np.full((4, 2), np.nan), 2, seed=0)
    with pytest.raises(ValueError, match=r"same V, got \[2, 3\] and \[4, 2\]"):
        assign_topics(np.zeros((2, 3)), np.zeros((4, 2)))


# ------------------------------------------------------------------ errors


def test_forward_errors_say_expected_and_got() -> None:
    inputs = sequences(0)
    extractor = make("dcm")
    with pytest.raises(
        ValueError, match=r"DCMExtractor: expected e .* \[B, L, 6\], got .*\[4, 7, 5\]"
    ):
        extractor(inputs["e"][..., :5], inputs["mask"], inputs["valid"])
    with pytest.raises(ValueError, match=r"expected mask of dtype torch.bool .* got torch.float32"):
        extractor(inputs["e"], inputs["mask"].float(), inputs["valid"])
    pfs = make("pfs")
    with pytest.raises(ValueError, match=r"SubsequenceExtractor: expected item_ids .* got None"):
        pfs(inputs["e"], inputs["mask"], inputs["valid"])
    bad_ids = inputs["item_ids"].clone()
    bad_ids[0, 0] = N_ITEMS
    with pytest.raises(ValueError, match=rf"expected item ids in \[-1, {N_ITEMS - 1}\]"):
        pfs(inputs["e"], inputs["mask"], inputs["valid"], item_ids=bad_ids)


def test_constructor_errors_list_every_problem() -> None:
    with pytest.raises(ValueError, match=r"k = 0: must be an int >= 1; iterations = 0"):
        DCMExtractor(dim=4, k=0, generator=_gen(), clustering=Clustering(iterations=0))
    with pytest.raises(ValueError, match=r"generator = None: must be a torch.Generator"):
        CapsuleExtractor(dim=4, k=2, generator=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"k = 6: must be <= n_topics = 5"):
        SubsequenceExtractor(dim=4, k=6, item_topics=ITEM_TOPICS, n_topics=5)
    with pytest.raises(ValueError, match=r"item_topics: values must lie in \[-1, 1\]"):
        SubsequenceExtractor(dim=4, k=1, item_topics=ITEM_TOPICS, n_topics=2)


def test_dcm_min_share_drops_a_stray_item_cluster() -> None:
    # Nine items near (1, 0) and one outlier, the most recent: in eval it seeds slot 0
    # and keeps a cluster of its own, which min_share drops (zero centroid, importance).
    e = torch.tensor([[[1.0, 0.01 * i] for i in range(9)] + [[-1.0, 0.0]]])
    mask = torch.ones(1, 10, dtype=torch.bool)
    kept = DCMExtractor(dim=2, k=2, generator=torch.Generator().manual_seed(0)).eval()
    pruned = DCMExtractor(
        dim=2, k=2, generator=torch.Generator().manual_seed(0), clustering=Clustering(min_share=0.2)
    ).eval()
    assert kept(e, mask, mask).slot_mask.tolist() == [[True, True]]
    out = pruned(e, mask, mask)
    mass = kept(e, mask, mask).importance[0]
    assert mass[0] / mass.sum() < 0.2  # the outlier's cluster
    assert out.slot_mask.tolist() == [[False, True]]
    assert out.importance[0, 0] == 0
    assert out.importance[0, 1] == mass[1]
    assert torch.all(out.conditions[0, 0] == 0)
    with pytest.raises(ValueError, match=r"min_share = 1.5: must be in \[0, 1\)"):
        DCMExtractor(dim=2, k=2, generator=torch.Generator(), clustering=Clustering(min_share=1.5))


def test_dcm_attention_pool_of_one_cluster_is_the_single_models_query() -> None:
    """With K = 1 every real item is in the one cluster: the centroid points where the
    single model's attention pooling (same W, b, r, v) points; the importance is the
    routed mass, as without the attention."""
    inputs = sequences(5)
    mask = inputs["mask"]
    torch.manual_seed(1)
    dcm = DCMExtractor(dim=D, k=1, generator=_gen(), clustering=Clustering(pool="attention"))
    single = SingleExtractor(dim=D)
    with torch.no_grad():  # a trained-looking v, so the attention is far from uniform
        dcm.pool_score.weight.normal_(0.0, 2.0)
        for mine, theirs in (
            (dcm.pool_proj, single.proj),
            (dcm.pool_recency, single.recency),
            (dcm.pool_score, single.score),
        ):
            for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
                b.copy_(a)
    got, want = run(dcm.eval(), inputs), run(single.eval(), inputs)
    rows = mask.any(dim=1)
    torch.testing.assert_close(
        F.normalize(got.conditions[rows], dim=-1), F.normalize(want.conditions[rows], dim=-1)
    )
    plain = run(DCMExtractor(dim=D, k=1, generator=_gen()).eval(), inputs)
    torch.testing.assert_close(got.importance, plain.importance)
    assert not torch.allclose(got.conditions[rows], plain.conditions[rows])


@pytest.mark.parametrize(
    "clustering",
    [
        Clustering(),
        Clustering(routing=capsule_routing),
        Clustering(pool="attention", scale="items", min_share=0.05),
        Clustering(init="gaussian"),
    ],
)
def test_dcm_with_one_interest_serves_without_a_seed_search(
    clustering: Clustering, monkeypatch: pytest.MonkeyPatch
) -> None:
    """K = 1 in eval (a model serving one embedding): no farthest-point search, and the
    interests of the seeded path to the bit, empty rows and invalid items included."""
    import multiembed.nn.extractors.dcm as dcm_module

    inputs = sequences(11, b=6, length=9)
    torch.manual_seed(0)
    dcm = DCMExtractor(dim=D, k=1, generator=_gen(), clustering=clustering).eval()
    monkeypatch.setattr(dcm_module, "_START_BLIND", ())  # the seeded path
    seeded = run(dcm, inputs)
    monkeypatch.undo()

    def no_seeds(*args: object, **kwargs: object) -> None:
        raise AssertionError("searched for seeds")

    monkeypatch.setattr(dcm_module, "farthest_point_init", no_seeds)
    fast = run(dcm, inputs)
    assert torch.equal(fast.conditions, seeded.conditions)
    assert torch.equal(fast.slot_mask, seeded.slot_mask)
    assert torch.equal(fast.importance, seeded.importance)
    assert not inputs["mask"][2].any()  # an empty row: no mass
    assert fast.importance[2, 0] == 0
    if clustering.init == "farthest_point":  # training still draws its seed
        with pytest.raises(AssertionError, match="searched for seeds"):
            run(dcm.train(), inputs)


def test_dcm_attention_pool_starts_as_the_mean_and_learns() -> None:
    inputs = sequences(6)
    pooled = DCMExtractor(dim=D, k=K, generator=_gen(), clustering=Clustering(pool="attention"))
    with torch.no_grad():
        pooled.pool_score.weight.zero_()  # uniform attention: Eq. 2's centroids
    assert_interests_equal(
        run(pooled.eval(), inputs), run(DCMExtractor(dim=D, k=K, generator=_gen()).eval(), inputs)
    )
    pooled.pool_score.weight.data.normal_()
    run(pooled.train(), inputs).conditions.nan_to_num().sum().backward()
    assert pooled.pool_score.weight.grad is not None
    assert float(pooled.pool_score.weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match=r"pool = 'max': must be one of \['mean', 'attention'\]"):
        DCMExtractor(dim=D, k=K, generator=_gen(), clustering=Clustering(pool="max"))  # type: ignore[arg-type]


@pytest.mark.parametrize("pool", ["mean", "attention"])
def test_dcm_items_scale_keeps_directions_and_importance_and_drops_the_mass(pool: str) -> None:
    inputs = sequences(9)
    clustering = Clustering(pool=pool)  # type: ignore[arg-type]
    by_mass = DCMExtractor(dim=D, k=K, generator=_gen(), clustering=clustering)
    by_items = DCMExtractor(
        dim=D, k=K, generator=_gen(), clustering=clustering._replace(scale="items")
    )
    by_items.load_state_dict(by_mass.state_dict())  # the same attention, if any
    mass, items = run(by_mass.eval(), inputs), run(by_items.eval(), inputs)
    assert torch.equal(items.slot_mask, mass.slot_mask)
    torch.testing.assert_close(items.importance, mass.importance)
    used = mass.slot_mask & (mass.importance > 0)
    torch.testing.assert_close(
        F.normalize(items.conditions[used], dim=-1), F.normalize(mass.conditions[used], dim=-1)
    )
    # three orthogonal items, three clusters: each condition is its item, not squashed
    e = 2.0 * torch.eye(3, D).unsqueeze(0)  # [1, 3, D]
    mask = torch.ones(1, 3, dtype=torch.bool)
    dcm = DCMExtractor(
        dim=D, k=3, generator=_gen(), clustering=Clustering(scale="items", min_share=0.1)
    )
    got = dcm.eval()(e, mask, mask)
    assert got.slot_mask.all()
    torch.testing.assert_close(
        got.conditions[0][got.conditions[0].abs().argmax(dim=1).argsort()], e[0]
    )
    with pytest.raises(ValueError, match=r"scale = 'sum': must be one of \['mass', 'items'\]"):
        DCMExtractor(dim=D, k=K, generator=_gen(), clustering=Clustering(scale="sum"))  # type: ignore[arg-type]


def test_dcm_affinity_reaches_the_routing() -> None:
    inputs = sequences(8)
    seen: list[object] = []

    def spy(*args: Tensor, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(kwargs["affinity"])
        return single_assignment_routing(*args, **kwargs)  # type: ignore[arg-type]

    cosine = DCMExtractor(
        dim=D, k=K, generator=_gen(), clustering=Clustering(routing=spy, affinity="cosine")
    ).eval()
    assert torch.equal(
        run(cosine, inputs).conditions, run(make("dcm_cosine").eval(), inputs).conditions
    )
    assert seen == ["cosine"]
    with pytest.raises(ValueError, match=r"affinity = 'cos': must be one of \['dot', 'cosine'\]"):
        DCMExtractor(dim=D, k=K, generator=_gen(), clustering=Clustering(affinity="cos"))  # type: ignore[arg-type]


def test_recency_attention_scores_and_gradients_match_the_embedding_lookup() -> None:
    torch.manual_seed(0)
    single = SingleExtractor(dim=D)
    e = torch.randn(4, 9, D)
    mask = torch.rand(4, 9) < 0.7

    def reference(x: Tensor, m: Tensor) -> Tensor:
        later = m.sum(1, keepdim=True) - m.long().cumsum(1)  # real items after i
        rank = later.clamp(max=single.recency.num_embeddings - 1)
        return single.score(torch.tanh(single.proj(x) + single.recency(rank))).squeeze(-1)

    def run(scores: Callable[[Tensor, Tensor], Tensor]) -> list[Tensor]:
        single.zero_grad()
        x = e.clone().requires_grad_()
        out = scores(x, mask)
        out.masked_fill(~mask, 0.0).square().sum().backward()
        grads = [p.grad for p in (x, *single.parameters())]
        assert all(g is not None for g in grads)
        return [out.detach(), *(g for g in grads if g is not None)]

    got = run(
        lambda x, m: recency_attention_scores(x, m, single.proj, single.recency, single.score)
    )
    for g, w in zip(got, run(reference), strict=True):
        assert torch.equal(g, w)
