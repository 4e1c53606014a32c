"""Tests for DHEN feature crossing (Appendix A), its Parallel MaskNet and the size presets."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from multiembed.nn.dhen import DHEN, DHENSizes, encode_few_fields
from multiembed.nn.dhen_sizes import PAPER, PRESETS, SMALL
from multiembed.nn.masknet import MaskBlock, ParallelMaskNet

B, F, D = 5, 3, 8


def make_dhen(out_dim: int = 4, **overrides: float) -> DHEN:
    sizes: dict[str, float] = {
        "field_dim": D,
        "n_heads": 2,
        "transformer_ff_dim": 16,
        "mlp_hidden_dim": 32,
        "masknet_blocks": 2,
        "masknet_hidden_dim": 8,
        "masknet_projection_ratio": 0.5,
    }
    sizes.update(overrides)
    return DHEN(n_fields=F, out_dim=out_dim, sizes=DHENSizes(**sizes))  # type: ignore[arg-type]


def fields(batch: int = B, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, F, D, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- MaskNet


def numpy_layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * gain + bias


def test_mask_block_matches_numpy_reference() -> None:
    torch.manual_seed(0)
    block = MaskBlock(in_dim=6, hidden_dim=4, projection_ratio=0.5)
    with torch.no_grad():
        for p in block.parameters():  # move zero biases and unit gains off their init values
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(7, 6)

    def a(t: torch.Tensor) -> np.ndarray:
        return t.detach().double().numpy()

    xs = a(x)
    mask = (
        a(block.mask_out.weight)
        @ np.maximum(a(block.mask_in.weight) @ xs.T + a(block.mask_in.bias)[:, None], 0)
        + a(block.mask_out.bias)[:, None]
    )  # [E, B]
    normed = numpy_layer_norm(xs, a(block.input_norm.weight), a(block.input_norm.bias))
    hidden = (normed * mask.T) @ a(block.hidden.weight).T + a(block.hidden.bias)
    expected = np.maximum(numpy_layer_norm(hidden, a(block.norm.weight), a(block.norm.bias)), 0)

    assert block.mask_in.out_features == 3  # 0.5 x 6
    np.testing.assert_allclose(a(block(x)), expected, atol=1e-5)


def test_parallel_masknet_concatenates_its_blocks() -> None:
    torch.manual_seed(0)
    net = ParallelMaskNet(in_dim=6, n_blocks=3, hidden_dim=4, projection_ratio=0.5)
    x = torch.randn(2, 6)
    out = net(x)
    assert out.shape == (2, 12)
    assert net.out_dim == 12
    for m, block in enumerate(net.blocks):
        torch.testing.assert_close(out[:, 4 * m : 4 * (m + 1)], block(x))


def test_masknet_rejects_wrong_width() -> None:
    net = ParallelMaskNet(in_dim=6, n_blocks=1, hidden_dim=4, projection_ratio=0.5)
    with pytest.raises(ValueError, match=r"x: expected shape \[B, 6\], got \[2, 5\]"):
        net(torch.zeros(2, 5))


# ---------------------------------------------------------------- DHEN


@pytest.mark.parametrize("batch", [1, B])
def test_dhen_output_shape(batch: int) -> None:
    torch.manual_seed(0)
    out = make_dhen()(fields(batch))
    assert out.shape == (batch, 4)
    assert torch.isfinite(out).all()


def test_dhen_is_the_documented_two_hierarchy_sum() -> None:
    torch.manual_seed(0)
    dhen = make_dhen().eval()
    x = fields()
    with torch.no_grad():
        h = dhen.transformer(x) + dhen.mlp1(x.reshape(B, F * D)).reshape(B, F, D)
        h = h.reshape(B, F * D)
        expected = dhen.out(dhen.masknet(h) + dhen.mlp2(h))
        torch.testing.assert_close(dhen(x), expected)
    assert len(dhen.transformer.layers) == 2
    assert dhen.mlp2[-1].out_features == dhen.masknet.out_dim == 2 * 8  # summed at equal width


def test_dhen_is_batch_permutation_equivariant() -> None:
    torch.manual_seed(0)
    dhen = make_dhen().eval()
    x = fields(8)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(dhen(x[perm]), dhen(x)[perm])


def test_dhen_eval_forward_is_deterministic_with_dropout() -> None:
    torch.manual_seed(0)
    dhen = make_dhen(dropout=0.3)
    x = fields()
    assert not torch.equal(dhen(x), dhen(x))  # dropout is live in training
    dhen.eval()
    with torch.no_grad():  # no_grad eval takes torch's fused transformer fast path
        fast = dhen(x)
        assert torch.equal(fast, dhen(x))
    assert torch.equal(dhen(x), dhen(x))
    torch.testing.assert_close(fast, dhen(x))  # the fast path computes the same function


def test_dhen_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    dhen = make_dhen()
    (dhen(fields(16)) * torch.randn(16, 4)).sum().backward()
    for name, p in dhen.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert torch.count_nonzero(p.grad) > 0, name


def test_dhen_transformer_layers_start_independent() -> None:
    torch.manual_seed(0)
    first, second = make_dhen().transformer.layers
    for (name, p1), p2 in zip(first.named_parameters(), second.parameters(), strict=True):
        if "norm" not in name and "bias" not in name:  # gains start at 1, biases at 0
            assert not torch.equal(p1, p2), name


def test_dhen_parameters_are_initialised() -> None:
    torch.manual_seed(0)
    a = make_dhen()
    torch.manual_seed(0)
    b = make_dhen()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.isfinite(pa).all(), name
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize(
    ("shape", "got"),
    [((B, F + 1, D), r"\[5, 4, 8\]"), ((B, F, D - 1), r"\[5, 3, 7\]"), ((B, F * D), r"\[5, 24\]")],
)
def test_dhen_rejects_wrong_field_shapes(shape: tuple[int, ...], got: str) -> None:
    with pytest.raises(ValueError, match=r"fields: expected shape \[B, 3, 8\], got " + got):
        make_dhen()(torch.zeros(shape))


def test_dhen_rejects_bad_arguments_all_at_once() -> None:
    with pytest.raises(ValueError, match="invalid DHENSizes") as info:
        make_dhen(field_dim=10, n_heads=4, dropout=1.0, masknet_blocks=0)
    for fragment in (
        "field_dim = 10: must be divisible by n_heads = 4",
        "dropout = 1.0: must be in [0, 1)",
        "masknet_blocks = 0: must be >= 1",
    ):
        assert fragment in str(info.value)
    with pytest.raises(ValueError, match="invalid DHEN arguments") as info:
        DHEN(n_fields=0, out_dim=0, sizes=SMALL)
    for fragment in ("n_fields = 0: must be >= 1", "out_dim = 0: must be >= 1"):
        assert fragment in str(info.value)


@pytest.mark.parametrize(("module", "cap"), [(DHEN, 3), (ParallelMaskNet, 5), (MaskBlock, 4)])
def test_constructor_arguments_are_capped(module: type, cap: int) -> None:
    params = inspect.signature(module).parameters.values()
    assert len(params) <= cap
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)


def test_dhen_learns_a_field_interaction() -> None:
    """The target is a product of two fields, which no linear map of the inputs can fit."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, F, D, generator=g)
        return x, (x[:, 0] * x[:, 1]).sum(dim=-1) / D**0.5  # [n, F, D], [n]

    dhen = make_dhen(transformer_ff_dim=32, mlp_hidden_dim=64, masknet_hidden_dim=32, out_dim=1)
    optimiser = torch.optim.Adam(dhen.parameters(), lr=1e-2)
    x_test, y_test = batch(512)
    for _ in range(100):
        x, y = batch(256)
        loss = ((dhen(x).squeeze(-1) - y) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    dhen.eval()
    with torch.no_grad():
        test_loss = ((dhen(x_test).squeeze(-1) - y_test) ** 2).mean()
    assert test_loss < 0.5 * y_test.var()  # predicting the mean scores y_test.var()


# ---------------------------------------------------------------- presets


def test_paper_preset_matches_appendix_a() -> None:
    assert (PAPER.field_dim, PAPER.n_heads, PAPER.mlp_hidden_dim) == (256, 4, 1024)
    assert (PAPER.masknet_blocks, PAPER.masknet_hidden_dim) == (4, 128)
    assert PAPER.masknet_projection_ratio == 0.5
    assert PRESETS["paper"] is PAPER
    assert PRESETS["small"] is SMALL


@pytest.mark.parametrize("sizes", [SMALL, PAPER])
def test_presets_build_a_working_dhen(sizes: DHENSizes) -> None:
    torch.manual_seed(0)
    dhen = DHEN(n_fields=2, out_dim=3, sizes=sizes)
    assert dhen(torch.randn(2, 2, sizes.field_dim)).shape == (2, 3)
    assert set(inspect.signature(DHEN).parameters) == {"n_fields", "out_dim", "sizes"}


def test_presets_are_frozen_and_validated() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SMALL.field_dim = 64  # type: ignore[misc]
    with pytest.raises(TypeError):
        PRESETS["tiny"] = SMALL  # type: ignore[index]
    with pytest.raises(ValueError, match=r"invalid DHENSizes: field_dim = 30: must be divisible"):
        dataclasses.replace(SMALL, field_dim=30, n_heads=4)
    with pytest.raises(ValueError, match=r"masknet_projection_ratio = 0\.0: must be > 0"):
        dataclasses.replace(SMALL, masknet_projection_ratio=0.0)


def test_small_preset_fits_small_machines() -> None:
    n_parameters = sum(p.numel() for p in DHEN(n_fields=8, out_dim=64, sizes=SMALL).parameters())
    assert n_parameters < 500_000


@pytest.mark.parametrize("n_fields", [1, 2, F])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_few_field_encoder_is_the_transformer_values_and_gradients(
    norm_first: bool, activation: str, n_fields: int
) -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        D, 2, 16, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    )
    encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    for p in encoder.parameters():  # every weight and bias off its initial value
        nn.init.normal_(p, std=0.3)
    x = fields(16)[:, :n_fields].clone().requires_grad_()
    weight = torch.randn(16, n_fields, D, generator=torch.Generator().manual_seed(2))
    ours = encode_few_fields(encoder, x)
    ours_grads = torch.autograd.grad((ours * weight).sum(), [x, *encoder.parameters()])
    with sdpa_kernel(SDPBackend.MATH):
        theirs = encoder(x)
    theirs_grads = torch.autograd.grad((theirs * weight).sum(), [x, *encoder.parameters()])
    torch.testing.assert_close(ours, theirs)
    for mine, reference in zip(ours_grads, theirs_grads, strict=True):
        torch.testing.assert_close(mine, reference)


@pytest.mark.parametrize("n_fields", [2, F])
def test_few_field_encoder_drops_out_as_the_layer_says(n_fields: int) -> None:
    torch.manual_seed(0)
    encoder = make_dhen(dropout=0.5).transformer
    x = fields(64)[:, :n_fields]
    assert not torch.equal(encode_few_fields(encoder, x), encode_few_fields(encoder, x))
    for layer in encoder.layers:  # the attention weights' dropout alone
        for name in ("dropout", "dropout1", "dropout2"):
            getattr(layer, name).p = 0.0
    assert not torch.equal(encode_few_fields(encoder, x), encode_few_fields(encoder, x))
    encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(encode_few_fields(encoder, x), encoder(x))


def test_dhen_trains_through_the_few_field_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counted(encoder: nn.TransformerEncoder, x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return encode_few_fields(encoder, x)

    monkeypatch.setattr("multiembed.nn.dhen.encode_few_fields", counted)
    dhen = make_dhen()
    dhen(fields(6)).sum().backward()
    assert calls == [6]
    with torch.no_grad():  # serving keeps torch's kernels
        dhen(fields(6))
    assert calls == [6]


def test_two_fields_attend_as_a_pair_unless_attention_drops_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import multiembed.nn.dhen as dhen_module

    calls: list[int] = []
    original = dhen_module._attend_pair

    def counted(*args: torch.Tensor | float) -> torch.Tensor:
        calls.append(1)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(dhen_module, "_attend_pair", counted)
    x = fields(4)[:, :2]
    encode_few_fields(make_dhen().transformer, x)
    assert len(calls) == 2  # once per layer
    encode_few_fields(make_dhen().transformer, fields(4))  # three fields: the general form
    assert len(calls) == 2
    encode_few_fields(make_dhen(dropout=0.5).transformer, x)  # attention weights drop out
    assert len(calls) == 2
