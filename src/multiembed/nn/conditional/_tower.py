"""The conditional user tower phi(u, c) of Conditional Retrieval (Section 3.3.1, Figure 4).

    history ids [B, L] ──summariser (Eq. 4)──▶ e [B, L, D_e]
    conditions [B, C] topic ids (-1: padded slot)
    fields per (user, condition) [B, C, F, D_f]:
        0  the condition's topic embedding            (learned table, n_topics rows)
        1  the mean of e over the valid history items (Linear D_e -> D_f), same for every c;
           a learned "no history" vector when no item is valid
        2  the followed-topic bag, mean of topic embeddings (only when followed topics are on)
    crossing (DHEN, Appendix A) on the present conditions' fields ──L2──▶ [B, C, D]
    (padded condition slots are not crossed and stay zero)

The fields follow `MultiInterestUserTower`'s layout (`CONDITION_FIELD`, `SUMMARY_FIELD`,
`FOLLOWED_FIELD`, `n_user_fields`), with a topic embedding in place of the implicit
condition c_j. Because the condition is a field in the embedding layer, the crossing
learns user x condition interactions instead of adding a topic vector at the end.
The history is summarised once per user, however many conditions it is crossed with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiembed.nn.conditional._functional import valid_mean
from multiembed.nn.features import ItemInputs, encode_items
from multiembed.nn.item_tower import ItemEncoder
from multiembed.nn.user_tower import FeatureCrossing, followed_bag, n_user_fields


class ConditionalUserTower(nn.Module):
    """User tower conditioned on explicit topics: see the module docstring.

    Args:
        summariser: an `nn.Module` following `ItemEncoder` for the history items (Eq. 4),
            owned by the tower (it may be the item tower's own summariser, to share item
            summaries between the towers).
        crossing: an `nn.Module` following `FeatureCrossing` with
            ``n_fields == n_user_fields(followed_topics=followed_topics)``; its
            ``out_dim`` is the embedding width ``D``.
        n_topics: size of the topic vocabulary; conditions (and followed topics) are
            ``0 .. n_topics - 1``.
        followed_topics: whether the user's followed topics enter as a bag-of-topics field.

    The summary averages only valid items (``history_valid``: present features and a
    positive action, the mask of Eq. 6): a hidden item or one with missing features is
    no evidence of interest, and a mean pool has no routing to discount it.

    Example:
        >>> from multiembed.nn.dhen import DHEN
        >>> from multiembed.nn.summariser import ItemSummariser
        >>> _ = torch.manual_seed(0)
        >>> tower = ConditionalUserTower(
        ...     summariser=ItemSummariser(n_items=10, id_dim=4, hidden_dim=8, out_dim=6),
        ...     crossing=DHEN(
        ...         n_fields=2, field_dim=4, n_heads=1, transformer_ff_dim=8, mlp_hidden_dim=8,
        ...         masknet_blocks=1, masknet_hidden_dim=4, masknet_projection_ratio=0.5,
        ...         out_dim=5,
        ...     ),
        ...     n_topics=7,
        ... ).eval()
        >>> history = torch.tensor([[1, 2, 3], [-1, -1, 4]])            # [B=2, L=3], -1 pads
        >>> tower(ItemInputs(history), history >= 0, torch.tensor([3, 0])).shape   # [B, D]
        torch.Size([2, 5])
        >>> per_topic = tower(ItemInputs(history), history >= 0, torch.tensor([[3, 6], [0, -1]]))
        >>> per_topic.shape, per_topic.norm(dim=-1).round(decimals=4).tolist()  # [B, C, D]
        (torch.Size([2, 2, 5]), [[1.0, 1.0], [1.0, 0.0]])
    """

    def __init__(
        self,
        *,
        summariser: ItemEncoder,
        crossing: FeatureCrossing,
        n_topics: int,
        followed_topics: bool = False,
    ) -> None:
        super().__init__()
        problems = [
            f"{name}: expected an nn.Module, got {type(part).__name__}"
            for name, part in (("summariser", summariser), ("crossing", crossing))
            if not isinstance(part, nn.Module)
        ]
        if isinstance(n_topics, bool) or not (isinstance(n_topics, int) and n_topics >= 1):
            problems.append(f"n_topics = {n_topics!r}: must be an int >= 1")
        if not isinstance(followed_topics, bool):
            problems.append(f"followed_topics = {followed_topics!r}: must be a bool")
        elif not problems:
            fields = n_user_fields(followed_topics=followed_topics)
            if crossing.n_fields != fields:
                problems.append(
                    f"crossing.n_fields = {crossing.n_fields}: must be {fields} (condition, "
                    f"sequence summary{', followed topics' if followed_topics else ''})"
                )
        if problems:
            raise ValueError("invalid ConditionalUserTower arguments: " + "; ".join(problems))
        self.summariser: ItemEncoder = summariser
        self.crossing: FeatureCrossing = crossing
        self.n_topics = n_topics
        self.followed_topics = followed_topics
        self.dim = crossing.out_dim
        field_dim = crossing.field_dim
        self.condition_table = nn.Embedding(n_topics, field_dim)
        self.summary_proj = nn.Linear(summariser.out_dim, field_dim)
        # A user without valid history gets a learned summary, not zeros (as in
        # MultiInterestUserTower): "no evidence" is an input of its own.
        self.empty_summary = nn.Parameter(torch.empty(field_dim))
        # row n_topics stands for "follows nothing"
        self.followed_table = nn.Embedding(n_topics + 1, field_dim) if followed_topics else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Condition embeddings and the "no history" summary ~ N(0, 1 / D_f) (unit norm scale),
        Xavier summary projection with zero bias, followed-topic embeddings ~ N(0, 0.02^2).

        The condition starts as loud as the summary, so the crossing reads it from the
        first step. The injected parts keep their own initialisation.
        """
        scale = self.empty_summary.shape[0] ** -0.5
        nn.init.trunc_normal_(self.condition_table.weight, std=scale, a=-2 * scale, b=2 * scale)
        nn.init.trunc_normal_(self.empty_summary, std=scale, a=-2 * scale, b=2 * scale)
        nn.init.xavier_uniform_(self.summary_proj.weight)
        nn.init.zeros_(self.summary_proj.bias)
        if self.followed_table is not None:
            nn.init.trunc_normal_(self.followed_table.weight, std=0.02)

    def forward(
        self,
        history: ItemInputs,
        history_valid: Tensor,
        conditions: Tensor,
        *,
        followed: Tensor | None = None,
    ) -> Tensor:
        """Embed each user under each of its conditions.

        Args:
            history: features of the history items, ``item_ids [B, L]`` with ``-1`` at
                padding (see `ItemFeatures.lookup`).
            history_valid: ``[B, L]`` bool, True for a valid item with a positive action;
                ignored at padding.
            conditions: ``[B]`` or ``[B, C]`` int64 topic ids; ``-1`` marks a padded slot
                (e.g. a user following fewer than ``C`` topics).
            followed: ``[B, T]`` int64 followed topics padded with ``-1``; required iff
                the tower was built with ``followed_topics=True``.

        Returns:
            ``[B, D]`` for ``[B]`` conditions, ``[B, C, D]`` for ``[B, C]``: unit-norm user
            embeddings phi(u, c), zero at padded condition slots.
        """
        ids = history.item_ids
        b = self._check(ids, history_valid, conditions)
        squeeze = conditions.dim() == 1
        cond = conditions.long().unsqueeze(1) if squeeze else conditions.long()  # [B, C]
        c = cond.shape[1]
        e = encode_items(self.summariser, history)  # [B, L, D_e]
        mean, has_history = valid_mean(e, history_valid & (ids >= 0))  # [B, D_e], [B]
        summary = torch.where(
            has_history.unsqueeze(1), self.summary_proj(mean), self.empty_summary
        )  # [B, D_f]
        fields = [
            self.condition_table(cond.clamp_min(0)),  # [B, C, D_f]
            summary.unsqueeze(1).expand(b, c, -1),
        ]
        if self.followed_table is not None:
            bag = followed_bag(  # [B, D_f]
                self.followed_table, followed, b, where="ConditionalUserTower"
            )
            fields.append(bag.unsqueeze(1).expand(b, c, -1))
        elif followed is not None:
            raise ValueError(
                "ConditionalUserTower: expected followed = None (followed_topics = False), "
                f"got a tensor of shape {list(followed.shape)}"
            )
        stacked = torch.stack(fields, dim=2).reshape(b * c, len(fields), -1)  # [B*C, F, D_f]
        # Cross only present conditions; rows are independent, so this is exact.
        present = (cond >= 0).reshape(b * c)  # [B*C]
        out = stacked.new_zeros(b * c, self.dim)  # [B*C, D]
        if bool(present.any()):
            crossed = F.normalize(self.crossing(stacked[present]), dim=-1)
            out = out.index_put((present.nonzero().squeeze(1),), crossed)
        out = out.view(b, c, self.dim)  # [B, C, D]
        return out.squeeze(1) if squeeze else out

    def _check(self, ids: Tensor, history_valid: Tensor, conditions: Tensor) -> int:
        """Validate the inputs; return ``B``."""
        if ids.dim() != 2:
            raise ValueError(
                f"ConditionalUserTower: expected history.item_ids of shape [B, L], "
                f"got {list(ids.shape)}"
            )
        b = ids.shape[0]
        if history_valid.dtype != torch.bool or history_valid.shape != ids.shape:
            raise ValueError(
                f"ConditionalUserTower: expected history_valid of dtype torch.bool and shape "
                f"{list(ids.shape)}, got {history_valid.dtype} of shape "
                f"{list(history_valid.shape)}"
            )
        if conditions.dim() not in (1, 2) or conditions.shape[0] != b:
            raise ValueError(
                f"ConditionalUserTower: expected conditions of shape [{b}] or [{b}, C], "
                f"got {list(conditions.shape)}"
            )
        if conditions.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"ConditionalUserTower: expected conditions of dtype int32 or int64, "
                f"got {conditions.dtype}"
            )
        if conditions.numel() and (
            int(conditions.min()) < -1 or int(conditions.max()) >= self.n_topics
        ):
            raise ValueError(
                f"ConditionalUserTower: expected condition topics in [-1, {self.n_topics - 1}], "
                f"got [{int(conditions.min())}, {int(conditions.max())}]"
            )
        return b

    def extra_repr(self) -> str:
        return f"n_topics={self.n_topics}, dim={self.dim}"
