"""Tests for the item feature summariser (Eq. 4) and the item tower."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from multiembed.nn.item_tower import ItemTower
from multiembed.nn.summariser import ItemSummariser, SummaryInputs

N_ITEMS, N_TOPICS, VECTOR_DIM, CARDINALITIES = 20, 6, 5, (4, 3)


def make_summariser(**overrides: object) -> ItemSummariser:
    inputs: dict[str, object] = {
        "n_topics": N_TOPICS,
        "vector_dim": VECTOR_DIM,
        "categorical_cardinalities": CARDINALITIES,
    }
    sizes: dict[str, object] = {"n_items": N_ITEMS, "id_dim": 4, "hidden_dim": 16, "out_dim": 8}
    for name, value in overrides.items():
        (sizes if name in sizes else inputs)[name] = value
    return ItemSummariser(**sizes, inputs=SummaryInputs(**inputs))  # type: ignore[arg-type]


def make_inputs(shape: tuple[int, ...], seed: int = 0, n_topic_slots: int = 3) -> dict[str, Tensor]:
    """Random inputs with every special case: padded ids, missing vectors/codes, empty bags."""
    g = torch.Generator().manual_seed(seed)
    item_ids = torch.randint(-1, N_ITEMS, shape, generator=g)
    vector = torch.randn(*shape, VECTOR_DIM, generator=g)
    vector_present = torch.rand(shape, generator=g) > 0.3
    codes = torch.stack(
        [torch.randint(-1, c, shape, generator=g) for c in CARDINALITIES], dim=-1
    )  # [*S, F]
    topics = torch.randint(-1, N_TOPICS, (*shape, n_topic_slots), generator=g)  # [*S, T]
    if item_ids.numel() >= 4:  # pin one of each special case (views write through)
        item_ids.view(-1)[0] = -1
        vector_present.view(-1)[1] = False
        codes.view(-1, len(CARDINALITIES))[2] = -1
        topics.view(-1, n_topic_slots)[3] = -1
    return {
        "item_ids": item_ids,
        "vector": vector,
        "vector_present": vector_present,
        "codes": codes,
        "topics": topics,
    }


def summarise(module: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
    rest = {k: v for k, v in inputs.items() if k != "item_ids"}
    return module(inputs["item_ids"], **rest)


def numpy_eq4(s: ItemSummariser, inputs: dict[str, Tensor]) -> np.ndarray:
    """Eq. 4 item by item in float64 NumPy: concat features, W1, exact GELU, W2."""

    def a(t: Tensor) -> np.ndarray:
        return t.detach().double().numpy()

    item_rows, missing = a(s.item_table.weight), a(s.missing_vector)
    code_rows = [a(t.weight) for t in s.code_tables if isinstance(t, nn.Embedding)]
    topic_rows = a(s.topic_table.weight)
    w1, b1, w2, b2 = a(s.w1.weight), a(s.w1.bias), a(s.w2.weight), a(s.w2.bias)
    ids = inputs["item_ids"].reshape(-1).tolist()
    vectors = a(inputs["vector"]).reshape(len(ids), -1)
    present = inputs["vector_present"].reshape(-1).tolist()
    codes = inputs["codes"].reshape(len(ids), -1).tolist()
    topics = inputs["topics"].reshape(len(ids), -1).tolist()
    out = []
    for n in range(len(ids)):
        parts = [np.zeros(item_rows.shape[1]) if ids[n] == -1 else item_rows[ids[n]]]
        parts.append(vectors[n] if present[n] else missing)
        for f, rows in enumerate(code_rows):
            parts.append(rows[-1] if codes[n][f] == -1 else rows[codes[n][f]])
        valid = [t for t in topics[n] if t >= 0]
        parts.append(topic_rows[valid].mean(axis=0) if valid else topic_rows[N_TOPICS])
        x = np.concatenate(parts)
        h = w1 @ x + b1
        h = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in h])
        out.append(w2 @ h + b2)
    return np.stack(out).reshape(*inputs["item_ids"].shape, -1)


# ---------------------------------------------------------------- summariser


@pytest.mark.parametrize("shape", [(), (7,), (2, 5), (2, 3, 4)])
def test_summariser_output_shape(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    out = summarise(make_summariser(), make_inputs(shape))
    assert out.shape == (*shape, 8)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(9,), (3, 4)])
def test_summariser_matches_numpy_eq4(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    s = make_summariser()
    with torch.no_grad():
        for p in s.parameters():  # move zero biases off their init values
            p.normal_(std=0.3)
        s.item_table.weight[N_ITEMS].zero_()  # the padding row's invariant
    inputs = make_inputs(shape, seed=1)
    out = summarise(s, inputs)
    np.testing.assert_allclose(out.detach().double().numpy(), numpy_eq4(s, inputs), atol=1e-5)


def test_summariser_table_gradients_are_the_embedding_lookups_and_skip_the_padding_row() -> None:
    torch.manual_seed(0)
    s = make_summariser()
    inputs = make_inputs((4, 6), seed=2)
    assert (inputs["item_ids"] < 0).any()  # padded ids reach the padding row
    weights = torch.randn(4, 6, 8, generator=torch.Generator().manual_seed(3))
    (summarise(s, inputs) * weights).sum().backward()
    grads = [t.weight.grad.clone() for t in (s.item_table, *s.code_tables)]
    assert grads[0][N_ITEMS].abs().max() == 0  # padding: zero and frozen

    ids = inputs["item_ids"]
    looked_up = [s.item_table(torch.where(ids < 0, N_ITEMS, ids))]
    for f, (table, c) in enumerate(zip(s.code_tables, CARDINALITIES, strict=True)):
        code = inputs["codes"][..., f]
        looked_up.append(table(torch.where(code < 0, c, code)))
    vector = torch.where(inputs["vector_present"][..., None], inputs["vector"], s.missing_vector)
    x = torch.cat([looked_up[0], vector, *looked_up[1:], s._pool_topics(inputs["topics"])], dim=-1)
    for t in (s.item_table, *s.code_tables):
        t.weight.grad = None
    (s.w2(torch.nn.functional.gelu(s.w1(x))) * weights).sum().backward()
    for got, table in zip(grads, (s.item_table, *s.code_tables), strict=True):
        torch.testing.assert_close(got, table.weight.grad, rtol=0, atol=1e-6)


def test_missing_vector_uses_learned_missing_embedding() -> None:
    torch.manual_seed(0)
    s = make_summariser()
    inputs = make_inputs((6,))
    inputs["vector_present"] = torch.tensor([True, False, True, False, True, True])
    absent = ~inputs["vector_present"]
    out = summarise(s, inputs)

    stand_in = dict(inputs, vector_present=torch.ones(6, dtype=torch.bool))
    stand_in["vector"] = torch.where(absent[:, None], s.missing_vector.detach(), inputs["vector"])
    torch.testing.assert_close(out, summarise(s, stand_in))

    zeros = dict(stand_in, vector=torch.where(absent[:, None], 0.0, inputs["vector"]))
    differ = (out - summarise(s, zeros)).abs().amax(dim=-1) > 1e-4  # [N]
    assert differ.tolist() == absent.tolist()


def test_missing_vector_values_are_ignored_even_nan() -> None:
    torch.manual_seed(0)
    s = make_summariser()
    inputs = make_inputs((6,))
    inputs["vector_present"] = torch.tensor([True, False, True, False, True, True])
    nan = dict(inputs, vector=inputs["vector"].clone())
    nan["vector"][~inputs["vector_present"]] = float("nan")
    out = summarise(s, nan)
    torch.testing.assert_close(out, summarise(s, inputs))
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))

    def grads(features: dict[str, Tensor]) -> dict[str, Tensor]:
        s.zero_grad(set_to_none=True)
        (summarise(s, features) * target).sum().backward()
        return {name: p.grad for name, p in s.named_parameters() if p.grad is not None}

    with_nan, clean = grads(nan), grads(inputs)
    # every parameter learns, the learned stand-in included, and NaN reaches none of them
    assert set(with_nan) == {name for name, _ in s.named_parameters()}
    for name, g in with_nan.items():
        assert torch.isfinite(g).all(), name
        assert torch.count_nonzero(g) > 0, name
        torch.testing.assert_close(g, clean[name], msg=name)


def test_absent_vector_present_means_all_present() -> None:
    torch.manual_seed(0)
    s = make_summariser()
    inputs = make_inputs((5,))
    all_present = dict(inputs, vector_present=torch.ones(5, dtype=torch.bool))
    implicit = {k: v for k, v in inputs.items() if k != "vector_present"}
    torch.testing.assert_close(summarise(s, implicit), summarise(s, all_present))


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_topic_bag_ignores_order_and_padding(data: st.DataObject) -> None:
    torch.manual_seed(0)
    s = make_summariser()
    bag = data.draw(st.lists(st.integers(0, N_TOPICS - 1), min_size=0, max_size=4))
    pad = data.draw(st.integers(0, 3))
    order = data.draw(st.permutations(list(range(len(bag)))))
    inputs = make_inputs((1,))
    plain = dict(inputs, topics=torch.tensor([bag], dtype=torch.int64).reshape(1, len(bag)))
    shuffled = [bag[i] for i in order] + [-1] * pad
    padded = dict(inputs, topics=torch.tensor([shuffled], dtype=torch.int64).reshape(1, -1))
    torch.testing.assert_close(summarise(s, plain), summarise(s, padded))


def test_topic_bags_are_the_mean_of_their_rows_with_a_loop_references_gradient() -> None:
    torch.manual_seed(0)
    s = make_summariser()
    table = s.topic_table.weight
    topics = torch.randint(-1, N_TOPICS, (3, 4, 6))  # [*S = 3 x 4, T = 6], -1 pads
    topics[0, 0] = -1  # no topic: the learned "no topics" row
    upstream = torch.randn(3, 4, table.shape[1])
    (s._pool_topics(topics) * upstream).sum().backward()
    assert table.grad is not None
    got, got_grad = s._pool_topics(topics).detach(), table.grad.clone()
    want = torch.empty_like(got)
    want_grad = torch.zeros_like(table)
    for i in range(3):
        for j in range(4):
            bag = [int(t) for t in topics[i, j] if t >= 0]
            rows = bag or [N_TOPICS]
            want[i, j] = table[rows].detach().mean(dim=0)
            for t in rows:
                want_grad[t] += upstream[i, j] / len(rows)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)


def test_padding_id_row_is_zero_and_never_trained() -> None:
    torch.manual_seed(0)
    s = make_summariser()
    inputs = make_inputs((4, 5))
    target = torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(1))
    (summarise(s, inputs) * target).sum().backward()
    grad = s.item_table.weight.grad
    assert grad is not None
    assert torch.count_nonzero(s.item_table.weight[N_ITEMS]) == 0
    assert torch.count_nonzero(grad[N_ITEMS]) == 0
    # the rows of the ids in the batch do learn, and only those
    used = sorted(set(inputs["item_ids"][inputs["item_ids"] >= 0].tolist()))
    learning = (grad[:N_ITEMS] != 0).any(dim=1)  # [N_ITEMS]
    assert torch.nonzero(learning).flatten().tolist() == used


def test_without_item_id_the_summary_ignores_ids() -> None:
    torch.manual_seed(0)
    s = make_summariser(use_item_id=False)
    assert not any("item_table" in name for name, _ in s.named_parameters())
    inputs = make_inputs((6,))
    other_ids = dict(inputs, item_ids=torch.arange(6) + 100)  # unseen ids are fine
    torch.testing.assert_close(summarise(s, inputs), summarise(s, other_ids))


def test_summariser_with_only_item_ids() -> None:
    torch.manual_seed(0)
    s = ItemSummariser(n_items=5, id_dim=3, hidden_dim=4, out_dim=2)
    assert s.in_dim == 3
    assert s(torch.tensor([[0, 4, -1]])).shape == (1, 3, 2)


def test_summariser_parameters_are_initialised() -> None:
    torch.manual_seed(0)
    a = make_summariser()
    torch.manual_seed(0)
    b = make_summariser()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.isfinite(pa).all(), name
        assert torch.equal(pa, pb), name  # from the seeded RNG, not leftover memory
    assert torch.count_nonzero(a.missing_vector) == VECTOR_DIM
    assert a.missing_vector.norm() > 0.3  # near unit scale: far from the zero vector


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vector": torch.zeros(4, 3)}, r"vector: expected shape \[4, 5\], got \[4, 3\]"),
        ({"vector": None}, r"vector: expected a tensor \(vector_dim=5\), got None"),
        ({"codes": torch.zeros(4, 3, dtype=torch.int64)}, r"codes: expected shape \[4, 2\]"),
        ({"codes": torch.tensor([[0, 0], [4, 0], [0, 0], [0, 0]])}, r"codes\[\.\.\., 0\]"),
        ({"topics": torch.full((4, 2), 6)}, r"topics: expected ids in \[-1, 5\], got"),
        ({"topics": torch.zeros(3, 2, dtype=torch.int64)}, r"topics: expected shape \[4, T\]"),
        ({"item_ids": torch.tensor([0, 1, 2, 20])}, r"item_ids: expected ids in \[-1, 19\]"),
        ({"item_ids": torch.zeros(4)}, r"item_ids: expected dtype int32 or int64"),
        ({"vector_present": torch.ones(4)}, r"vector_present: expected bool, got torch.float32"),
        ({"vector_present": torch.ones(5, dtype=torch.bool)}, r"vector_present: expected shape"),
    ],
)
def test_summariser_rejects_bad_inputs(change: dict[str, Tensor | None], message: str) -> None:
    s = make_summariser()
    inputs: dict[str, Tensor | None] = {**make_inputs((4,)), **change}
    ids = inputs.pop("item_ids")
    with pytest.raises(ValueError, match=message):
        s(ids, **inputs)


def test_summariser_rejects_inputs_it_was_not_built_for() -> None:
    s = ItemSummariser(n_items=5, id_dim=3, hidden_dim=4, out_dim=2)
    ids = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"vector: expected None \(vector_dim=None\), got a"):
        s(ids, vector=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"topics: expected None \(n_topics=0\)"):
        s(ids, topics=torch.zeros(2, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"codes: expected None \(0 categorical features\)"):
        s(ids, codes=torch.zeros(2, 1, dtype=torch.int64))


def test_summariser_rejects_bad_arguments_all_at_once() -> None:
    with pytest.raises(ValueError, match="id_dim = 0") as info:
        make_summariser(id_dim=0, out_dim=-1, vector_dim=0, categorical_cardinalities=(3, 0))
    for fragment in ("out_dim = -1", "vector_dim = 0", "categorical_cardinalities = (3, 0)"):
        assert fragment in str(info.value)
    with pytest.raises(ValueError, match="no features"):
        ItemSummariser(
            n_items=5, id_dim=3, hidden_dim=4, out_dim=2, inputs=SummaryInputs(use_item_id=False)
        )


# ---------------------------------------------------------------- item tower


def make_tower() -> ItemTower:
    return ItemTower(summariser=make_summariser(), out_dim=6)


@pytest.mark.parametrize("shape", [(7,), (2, 5)])
def test_item_tower_output_is_unit_norm(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    psi = summarise(make_tower(), make_inputs(shape))
    assert psi.shape == (*shape, 6)
    torch.testing.assert_close(psi.norm(dim=-1), torch.ones(shape))


def test_item_tower_is_batch_permutation_equivariant() -> None:
    torch.manual_seed(0)
    tower = make_tower().eval()
    inputs = make_inputs((9,))
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    permuted = {k: v[perm] for k, v in inputs.items()}
    torch.testing.assert_close(summarise(tower, permuted), summarise(tower, inputs)[perm])


def test_item_tower_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    tower = make_tower()
    target = torch.randn(3, 5, 6)
    (summarise(tower, make_inputs((3, 5))) * target).sum().backward()
    for name, p in tower.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert torch.count_nonzero(p.grad) > 0, name


def test_item_tower_eval_forward_is_deterministic() -> None:
    torch.manual_seed(0)
    tower = make_tower().eval()
    inputs = make_inputs((4, 3))
    with torch.no_grad():
        assert torch.equal(summarise(tower, inputs), summarise(tower, inputs))


def test_item_tower_takes_any_injected_encoder() -> None:
    class MeanEncoder(nn.Module):
        out_dim = 2

        def forward(self, item_ids: Tensor, **features: Tensor | None) -> Tensor:
            return torch.stack([item_ids.float(), torch.ones_like(item_ids.float())], dim=-1)

    tower = ItemTower(summariser=MeanEncoder(), out_dim=3)
    assert tower(torch.tensor([1, 2])).shape == (2, 3)


def test_item_tower_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"summariser: expected an nn\.Module, got str"):
        ItemTower(summariser="nope", out_dim=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out_dim = 0: must be >= 1"):
        ItemTower(summariser=make_summariser(), out_dim=0)


@pytest.mark.parametrize(("module", "cap"), [(ItemSummariser, 10), (ItemTower, 4)])
def test_constructor_arguments_are_capped(module: type, cap: int) -> None:
    params = inspect.signature(module).parameters.values()
    assert len(params) <= cap
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)


# --- the bounded residual: interests keep their conditions' spread ---------------------------


class _FixedConditions(nn.Module):
    """An extractor giving two orthogonal conditions for every user."""

    k, dim = 2, 2

    def forward(
        self, e: Tensor, mask: Tensor, valid: Tensor, *, item_ids=None, padding_zeroed=False
    ):
        from multiembed.nn.extractors.base import Interests

        b = e.shape[0]
        conditions = torch.eye(2).expand(b, 2, 2)  # [B, K=2, D_e=2]
        return Interests(conditions, torch.ones(b, 2, dtype=torch.bool), torch.ones(b, 2))


class _ConstantCrossing(nn.Module):
    """A crossing that ignores its fields: the worst case, identical for every slot."""

    n_fields, field_dim, out_dim = 2, 3, 2

    def forward(self, fields: Tensor) -> Tensor:
        return torch.tensor([3.0, 3.0]).expand(fields.shape[0], 2)


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_residual_keeps_interests_apart_even_with_identical_crossings(weight: float):
    from multiembed.nn.conditions import ExtractedConditions
    from multiembed.nn.features import ItemInputs
    from multiembed.nn.user_tower import Residual, UserTower

    summariser = ItemSummariser(n_items=5, id_dim=2, hidden_dim=4, out_dim=2)
    tower = UserTower(
        summariser=summariser,
        conditions=ExtractedConditions(extractor=_FixedConditions()),
        crossing=_ConstantCrossing(),
        residual=Residual(nn.Identity(), weight),
    )
    history = torch.tensor([[0, 1, 2]])
    o = tower(ItemInputs(history), history >= 0).embeddings[0].detach()  # [K=2, D=2]
    # unit conditions e1, e2 plus w * unit(1, 1): o_j = L2(e_j + w (1, 1) / sqrt 2)
    u = weight / math.sqrt(2.0)
    expected = ((1 + u) * u * 2) / ((1 + u) ** 2 + u**2)
    assert float(o[0] @ o[1]) == pytest.approx(expected, abs=1e-6)
    assert float(o[0] @ o[1]) < 0.5 if weight <= 0.5 else True  # 0.489 at w = 0.5


def test_encode_items_once_per_distinct_id_equals_encoding_every_slot():
    from multiembed.nn.features import ItemFeatures, ItemLookup, encode_items

    gen = torch.Generator().manual_seed(0)
    n = 40
    features = ItemFeatures(
        n_items=n,
        vector=torch.randn(n, 3, generator=gen),
        vector_present=torch.rand(n, generator=gen) > 0.2,
        codes=torch.randint(-1, 4, (n, 2), generator=gen),
        topics=torch.randint(-1, 6, (n, 5), generator=gen),
    )
    summariser = ItemSummariser(
        n_items=n, id_dim=4, hidden_dim=8, out_dim=6,
        inputs=SummaryInputs(n_topics=6, vector_dim=3, categorical_cardinalities=(4, 4)),
    )  # fmt: skip
    ids = torch.randint(-1, 10, (7, 9), generator=gen)  # [B, L], many repeats and padding
    inputs = features.lookup(ids)
    every_slot = summariser(
        inputs.item_ids,
        vector=inputs.vector,
        vector_present=inputs.vector_present,
        codes=inputs.codes,
        topics=inputs.topics,
    )  # [B, L, 6]
    torch.testing.assert_close(encode_items(summariser, inputs), every_slot)
    # ids and the table: only the distinct ids' features are gathered, the same values
    deduplicated = encode_items(summariser, inputs)
    assert torch.equal(encode_items(summariser, ItemLookup(ids, features)), deduplicated)
    distinct = torch.arange(-1, 10)
    assert torch.equal(
        encode_items(summariser, ItemLookup(distinct, features)),
        encode_items(summariser, features.lookup(distinct)),
    )


def test_encode_items_zero_padding_zeroes_only_padding_and_passes_it_no_gradient():
    from multiembed.nn.features import ItemFeatures, ItemLookup, encode_items

    gen = torch.Generator().manual_seed(1)
    features = ItemFeatures(n_items=12, vector=torch.randn(12, 3, generator=gen))
    summariser = ItemSummariser(
        n_items=12, id_dim=4, hidden_dim=8, out_dim=5, inputs=SummaryInputs(vector_dim=3)
    )
    repeats = torch.tensor([[-1, -1, 3, 3, 7], [-1, 2, 3, 9, 9]])  # encoded per distinct id
    distinct = torch.tensor([[-1, 0, 1, 2, 3]])  # nothing repeats: encoded as is
    for ids in (repeats, distinct):
        plain = encode_items(summariser, ItemLookup(ids, features))
        zeroed = encode_items(summariser, ItemLookup(ids, features), zero_padding=True)
        padding = (ids < 0).unsqueeze(-1).expand_as(plain)
        assert plain[padding].abs().min() > 0, "the summary of padding is not zero by itself"
        assert torch.equal(zeroed[padding], torch.zeros_like(zeroed[padding]))
        assert torch.equal(zeroed[~padding], plain[~padding])
        summariser.zero_grad(set_to_none=True)
        zeroed[padding].sum().backward()  # only padding positions: no gradient anywhere
        assert all(p.grad is None or not p.grad.any() for p in summariser.parameters())


class _Recorder(nn.Module):
    """An extractor that records what it is given and pools nothing (one zero slot)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.k, self.dim, self.calls = 1, dim, []

    def forward(
        self, e: Tensor, mask: Tensor, valid: Tensor, *, item_ids=None, padding_zeroed=False
    ):
        from multiembed.nn.extractors.base import Interests

        self.calls.append((e.detach().clone(), mask.clone(), padding_zeroed))
        b = e.shape[0]
        ones = torch.ones(b, 1, dtype=torch.bool)
        return Interests(e.new_zeros(b, 1, self.dim), ones, ones.to(e.dtype))


def test_user_tower_zeroes_padding_once_and_tells_every_reader():
    from multiembed.nn.conditions import ExtractedConditions
    from multiembed.nn.features import ItemInputs
    from multiembed.nn.user_tower import Summary, UserTower

    extractor, pool = _Recorder(2), _Recorder(2)
    tower = UserTower(
        summariser=ItemSummariser(n_items=6, id_dim=2, hidden_dim=4, out_dim=2),
        conditions=ExtractedConditions(extractor=extractor),
        crossing=_SumCrossing(),
        summary=Summary(pool=pool),
    )
    history = torch.tensor([[-1, -1, 0, 1, 1], [-1, 2, 3, 3, 5]])
    tower(ItemInputs(history), history >= 0)
    for recorder in (extractor, pool):
        ((e, mask, padding_zeroed),) = recorder.calls
        assert padding_zeroed
        assert torch.equal(mask, history >= 0)
        assert torch.equal(e[~mask], torch.zeros_like(e[~mask]))
        assert e[mask].abs().min() > 0


class _SumCrossing(nn.Module):
    """A crossing that adds its fields: every field moves the embedding."""

    n_fields, field_dim, out_dim = 2, 2, 2

    def forward(self, fields: Tensor) -> Tensor:
        return fields.sum(dim=1)


@pytest.mark.parametrize("global_only", [False, True])
def test_summary_global_only_keeps_the_summary_out_of_the_clusters(global_only: bool):
    """Changing the summary field moves every slot, or only the whole-history slot."""
    from multiembed.nn.conditions import ExtractedConditions
    from multiembed.nn.features import ItemInputs
    from multiembed.nn.user_tower import Summary, UserTower

    torch.manual_seed(0)
    tower = UserTower(
        summariser=ItemSummariser(n_items=5, id_dim=2, hidden_dim=4, out_dim=2),
        conditions=ExtractedConditions(extractor=_FixedConditions(), global_slot=True),
        crossing=_SumCrossing(),
        summary=Summary(global_only=global_only),
    )
    history = torch.tensor([[0, 1, 2]])

    def embed() -> Tensor:
        return tower(ItemInputs(history), history >= 0).embeddings[0].detach()  # [K + 1, D]

    before = embed()
    with torch.no_grad():
        tower.summary_proj.bias.add_(torch.tensor([5.0, -3.0]))
    moved = ~torch.isclose(embed(), before).all(dim=1)  # [K + 1]
    assert moved.tolist() == ([False, False, True] if global_only else [True, True, True])


def test_summary_global_only_needs_the_global_slot_and_a_summary():
    from multiembed.nn.conditions import ExtractedConditions
    from multiembed.nn.user_tower import Summary, UserTower

    with pytest.raises(ValueError, match="summary_global_only = True: needs global_slot"):
        UserTower(
            summariser=ItemSummariser(n_items=5, id_dim=2, hidden_dim=4, out_dim=2),
            conditions=ExtractedConditions(extractor=_FixedConditions()),
            crossing=_SumCrossing(),
            summary=Summary(global_only=True),
        )
