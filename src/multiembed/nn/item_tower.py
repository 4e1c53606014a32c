"""Item tower psi(i): an injected feature summariser, a final linear map, L2 normalisation."""

from __future__ import annotations

from typing import Protocol

import torch.nn.functional as F
from torch import Tensor, nn


class ItemEncoder(Protocol):
    """What the item tower needs from its summariser (e.g. `ItemSummariser`).

    An `nn.Module` whose call maps ``item_ids [*S]`` and optional feature
    tensors to ``[*S, out_dim]``.
    """

    out_dim: int

    def __call__(
        self,
        item_ids: Tensor,
        *,
        vector: Tensor | None = None,
        vector_present: Tensor | None = None,
        codes: Tensor | None = None,
        topics: Tensor | None = None,
    ) -> Tensor: ...


class ItemTower(nn.Module):
    """Normalised item embeddings psi(i) = normalise(W summarise(i) + b).

    Unit norm makes the user-item score a cosine similarity, the same geometry
    the exported index searches.

    Args:
        summariser: an `nn.Module` following `ItemEncoder`, owned by the tower
            (its parameters train with it).
        out_dim: width ``D`` of the item embedding.

    Example:
        >>> import torch
        >>> from multiembed.nn.summariser import ItemSummariser
        >>> _ = torch.manual_seed(0)
        >>> summariser = ItemSummariser(n_items=10, id_dim=8, hidden_dim=16, out_dim=12)
        >>> tower = ItemTower(summariser=summariser, out_dim=4)
        >>> psi = tower(torch.tensor([0, 3, 7]))                # [N=3] -> [N, D]
        >>> psi.shape
        torch.Size([3, 4])
        >>> torch.allclose(psi.norm(dim=-1), torch.ones(3))
        True
    """

    def __init__(self, *, summariser: ItemEncoder, out_dim: int) -> None:
        super().__init__()
        if not isinstance(summariser, nn.Module):
            raise TypeError(f"summariser: expected an nn.Module, got {type(summariser).__name__}")
        if out_dim < 1:
            raise ValueError(f"out_dim = {out_dim}: must be >= 1")
        self.summariser: ItemEncoder = summariser
        self.out_dim = out_dim
        self.proj = nn.Linear(summariser.out_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projection, zero bias. The summariser keeps its own initialisation."""
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(
        self,
        item_ids: Tensor,
        *,
        vector: Tensor | None = None,
        vector_present: Tensor | None = None,
        codes: Tensor | None = None,
        topics: Tensor | None = None,
    ) -> Tensor:
        """Embed items.

        Args: as `ItemSummariser.forward` (``item_ids [*S]``, ``-1`` pads).

        Returns:
            ``[*S, D]`` embeddings of unit L2 norm.
        """
        e = self.summariser(
            item_ids, vector=vector, vector_present=vector_present, codes=codes, topics=topics
        )  # [*S, summariser.out_dim]
        return F.normalize(self.proj(e), dim=-1)  # [*S, D]
