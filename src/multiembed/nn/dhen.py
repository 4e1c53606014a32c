"""DHEN feature crossing (Zhang et al. 2022), the two-hierarchy variant of the paper's Appendix A.

    fields x                                                       [B, F, D]
    hierarchy 1:  h = TransformerEncoder_2(x) + MLP_1(flat(x)).view   [B, F, D]
    hierarchy 2:  z = ParallelMaskNet(flat(h)) + MLP_2(flat(h))     [B, M * H]
    output:       y = W z + b                                      [B, out_dim]

The caller splits and projects its input features into ``F`` fields of equal
width ``D``, so the transformer crosses them field-wise while the MLPs and the
MaskNet read the concatenated fields ``flat(x)`` of width ``F * D``.

Summing parallel branches needs equal shapes. In hierarchy 1 the MLP maps
``F * D -> F * D`` and its output is viewed as ``[B, F, D]``, so the sum stays
field-wise and hierarchy 2 sees ``F`` fields whatever branch they came from.
In hierarchy 2 the MLP's second layer maps straight to the MaskNet's
concatenated width ``M * H``, so no extra projection is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from multiembed.nn.functional._checks import raise_problems
from multiembed.nn.masknet import ParallelMaskNet


@dataclass(frozen=True, kw_only=True)
class DHENSizes:
    """Sizes of a `DHEN`, validated at construction; named presets in `multiembed.nn.dhen_sizes`.

    Attributes:
        field_dim: width ``D`` of every field (the transformer's model width).
        n_heads: attention heads; must divide ``field_dim``.
        transformer_ff_dim: feed-forward width inside each transformer layer.
        mlp_hidden_dim: hidden width of both 2-layer MLPs.
        masknet_blocks: parallel mask blocks ``M``.
        masknet_hidden_dim: output width ``H`` of each mask block.
        masknet_projection_ratio: mask MLP width as a fraction of ``F * D``.
        dropout: dropout in the transformer and after each MLP's hidden layer;
            inactive in eval mode, so eval forwards are deterministic.
    """

    field_dim: int
    n_heads: int
    transformer_ff_dim: int
    mlp_hidden_dim: int
    masknet_blocks: int
    masknet_hidden_dim: int
    masknet_projection_ratio: float
    dropout: float = 0.0

    def __post_init__(self) -> None:
        problems = [
            f"{f.name} = {getattr(self, f.name)}: must be >= 1"
            for f in fields(self)
            if f.type == "int" and getattr(self, f.name) < 1
        ]
        if self.n_heads >= 1 and self.field_dim % self.n_heads != 0:
            problems.append(
                f"field_dim = {self.field_dim}: must be divisible by n_heads = {self.n_heads}"
            )
        if not self.masknet_projection_ratio > 0:
            problems.append(
                f"masknet_projection_ratio = {self.masknet_projection_ratio}: must be > 0"
            )
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout = {self.dropout}: must be in [0, 1)")
        if problems:
            raise ValueError("invalid DHENSizes: " + "; ".join(problems))


class DHEN(nn.Module):
    """Deep hierarchical ensemble network over ``F`` feature fields: ``[B, F, D] -> [B, out_dim]``.

    Args:
        n_fields: number of fields ``F``.
        out_dim: output width.
        sizes: the widths inside (`DHENSizes`); ``sizes.field_dim`` is ``D``.

    Sizes for the paper and for quick CPU runs are in `multiembed.nn.dhen_sizes`.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> sizes = DHENSizes(
        ...     field_dim=8, n_heads=2, transformer_ff_dim=16, mlp_hidden_dim=32,
        ...     masknet_blocks=2, masknet_hidden_dim=8, masknet_projection_ratio=0.5,
        ... )
        >>> dhen = DHEN(n_fields=3, out_dim=4, sizes=sizes)
        >>> dhen(torch.randn(5, 3, 8)).shape                      # [B, F, D] -> [B, out_dim]
        torch.Size([5, 4])
    """

    def __init__(self, *, n_fields: int, out_dim: int, sizes: DHENSizes) -> None:
        super().__init__()
        problems = [
            f"{name} = {value}: must be >= 1"
            for name, value in (("n_fields", n_fields), ("out_dim", out_dim))
            if value < 1
        ]
        if not isinstance(sizes, DHENSizes):
            problems.append(f"sizes: expected a DHENSizes, got {type(sizes).__name__}")
        raise_problems("DHEN", problems)
        field_dim, dropout = sizes.field_dim, sizes.dropout
        self.n_fields = n_fields
        self.field_dim = field_dim
        self.out_dim = out_dim
        flat_dim = n_fields * field_dim

        # hierarchy 1: transformer over fields || MLP over concatenated fields
        layer = nn.TransformerEncoderLayer(
            d_model=field_dim,
            nhead=sizes.n_heads,
            dim_feedforward=sizes.transformer_ff_dim,
            dropout=dropout,
            batch_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.mlp1 = _mlp(flat_dim, sizes.mlp_hidden_dim, flat_dim, dropout)

        # hierarchy 2: parallel MaskNet || MLP, both on the concatenated fields
        self.masknet = ParallelMaskNet(
            in_dim=flat_dim,
            n_blocks=sizes.masknet_blocks,
            hidden_dim=sizes.masknet_hidden_dim,
            projection_ratio=sizes.masknet_projection_ratio,
        )
        self.mlp2 = _mlp(flat_dim, sizes.mlp_hidden_dim, self.masknet.out_dim, dropout)

        self.out = nn.Linear(self.masknet.out_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights, zero biases, unit LayerNorm gains.

        `nn.TransformerEncoder` deep-copies one layer, so without this both
        layers would start from identical weights.
        """
        for module in (self.transformer, self.mlp1, self.mlp2, self.out):
            for m in module.modules():
                if isinstance(m, nn.MultiheadAttention):
                    nn.init.xavier_uniform_(m.in_proj_weight)
                    nn.init.zeros_(m.in_proj_bias)
                elif isinstance(m, nn.Linear):  # includes the attention's out_proj
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    m.reset_parameters()
        self.masknet.reset_parameters()

    def forward(self, fields: Tensor) -> Tensor:
        """Cross feature fields.

        Args:
            fields: ``[B, F, D]``, the caller's features projected to ``F`` fields.

        Returns:
            ``[B, out_dim]``.
        """
        F, D = self.n_fields, self.field_dim
        if fields.dim() != 3 or tuple(fields.shape[1:]) != (F, D):
            raise ValueError(f"fields: expected shape [B, {F}, {D}], got {list(fields.shape)}")
        B = fields.shape[0]
        flat = fields.reshape(B, F * D)  # [B, F*D]
        if fields.device.type == "cpu" and torch.is_grad_enabled():
            # training on a CPU: over a few fields a row, attention as elementwise
            # products (`encode_few_fields`), or else by plain matmuls, backpropagates
            # at a fraction of the fused kernel's time; serving (no gradient) keeps
            # the fused kernel, faster at small batches
            if F <= FEW_FIELDS:
                crossed = encode_few_fields(self.transformer, fields)  # [B, F, D]
            else:
                with sdpa_kernel(SDPBackend.MATH):
                    crossed = self.transformer(fields)
        else:
            crossed = self.transformer(fields)
        h = crossed + self.mlp1(flat).view(B, F, D)  # [B, F, D]
        h_flat = h.reshape(B, F * D)  # [B, F*D]
        z = self.masknet(h_flat) + self.mlp2(h_flat)  # [B, M*H]
        return self.out(z)  # [B, out_dim]


FEW_FIELDS = 8
"""At most this many fields, a training forward on a CPU runs `encode_few_fields`."""


def encode_few_fields(encoder: nn.TransformerEncoder, x: Tensor) -> Tensor:
    """``encoder(x)`` for ``x [B, F, D]`` with few fields ``F``: the same layers, weights
    and function (to rounding), with each head's ``F x F`` attention computed as
    elementwise products and sums over ``[B, F, F, H, D/H]`` instead of ``B * H``
    matrix products of ``F`` rows each, which a CPU runs one tiny product at a time:
    the default crossing's two layers (2 fields, 2,048 rows, two threads) ran forward
    and backward in about a third less time than with the plain-matmul kernel. Two
    fields without dropout on the attention weights (the default crossing's) take a
    softmax over two keys as a sigmoid (`_attend_pair`): a fifth less time again,
    9.8 -> 7.7 ms at 2,048 rows and two threads. No masks; dropout as the layers' own
    (attention weights, residual branches, feed-forward). The layers are batch-first
    `nn.TransformerEncoderLayer` with one input projection for queries, keys and
    values, as `DHEN` builds them.
    """
    for layer in encoder.layers:
        x = _encoder_layer(cast(nn.TransformerEncoderLayer, layer), x)
    return x if encoder.norm is None else encoder.norm(x)


def _encoder_layer(layer: nn.TransformerEncoderLayer, x: Tensor) -> Tensor:
    """One `nn.TransformerEncoderLayer` (batch first, post- or pre-norm) on ``[B, F, D]``."""
    attn = layer.self_attn
    b, f, d = x.shape
    heads = attn.num_heads

    scale = (d // heads) ** -0.5
    pair = f == 2 and not (attn.training and attn.dropout > 0)  # `_attend_pair` applies

    def attend(y: Tensor) -> Tensor:
        qkv = nn.functional.linear(y, attn.in_proj_weight, attn.in_proj_bias)  # [B, F, 3D]
        q, k, v = qkv.view(b, f, 3, heads, d // heads).unbind(2)  # [B, F, H, D/H] each
        if pair:
            mixed = _attend_pair(q, k, v, scale)
        else:
            scores = (q.unsqueeze(2) * k.unsqueeze(1)).sum(-1) * scale  # [B, F, F, H]
            weights = nn.functional.dropout(scores.softmax(dim=2), attn.dropout, attn.training)
            mixed = (weights.unsqueeze(-1) * v.unsqueeze(1)).sum(2)  # [B, F, H, D/H]
        return layer.dropout1(attn.out_proj(mixed.reshape(b, f, d)))

    def feed_forward(y: Tensor) -> Tensor:
        hidden = layer.dropout(layer.activation(layer.linear1(y)))
        return layer.dropout2(layer.linear2(hidden))

    if layer.norm_first:
        x = x + attend(layer.norm1(x))
        return x + feed_forward(layer.norm2(x))
    x = layer.norm1(x + attend(x))
    return layer.norm2(x + feed_forward(x))


def _attend_pair(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Each head's attention over two fields, ``q, k, v [B, 2, H, D/H] -> [B, 2, H, D/H]``:
    softmax(s_0, s_1) = (sigmoid(s_0 - s_1), 1 - sigmoid(s_0 - s_1)), so a query mixes
    v_1 + sigmoid(scale q.(k_0 - k_1)) (v_0 - v_1)."""
    k0, k1 = k.unbind(1)  # [B, H, D/H] each
    v0, v1 = v.unbind(1)
    first = torch.sigmoid((q * (k0 - k1).unsqueeze(1)).sum(-1) * scale)  # [B, 2, H]
    return v1.unsqueeze(1) + first.unsqueeze(-1) * (v0 - v1).unsqueeze(1)


def _mlp(in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """2-layer ReLU MLP ``[B, in_dim] -> [B, out_dim]``."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, out_dim),
    )
