"""Data parallel training through torchrun: process group, batch shards, gathered negatives.

Launch with ``torchrun --nproc_per_node=N -m multiembed train ...``; with
``WORLD_SIZE`` > 1 in the environment `setup` joins the process group (NCCL on
GPU, gloo on CPU) and the loop wraps the towers in `DistributedDataParallel`.

How a global batch is split. Every rank draws the same global batch of
``train.batch_size`` examples (the order is a function of seed and epoch) and
takes its contiguous slice (`np.array_split` sizes), so the towers see each
example once and the global batch is the configured one.

In-batch negatives across ranks. Eq. 9's softmax runs over every target of the
*global* batch, as one process would: each rank all-gathers the item embeddings
(`gather_rows`) and scores its users against all of them. The gather is an
autograd function whose backward all-reduces (sums) the gradient of the gathered
matrix and returns the local rows, so a rank's item embeddings receive the
gradient of every rank's loss, not only of its own rows; each rank's loss is its
rows' sum scaled by ``world_size / global_batch``, which DDP's gradient averaging
turns into the global mean. Item ids and their log q are not communicated:
every rank holds the whole global batch's ids and an identical frequency
estimator (updated with the global ids), so it computes them locally.

Model randomness. Where a stochastic module draws a fixed number of uniforms per
example from its own generator (DCM's first seed, the Gumbel noise), each rank
skips the draws of the rows before its slice and after it (`RowStreams`), so an
example gets the same noise as in one process and every rank's generator ends
in one process's state: training matches a single process up to float
summation order. Other generators (MIND's Gaussian centroids) cannot be split by
rows: ranks share one stream (rows at the same local position see the same
draw) and are kept identical by a broadcast from rank 0, so checkpoints stay
valid; such models match a single process in distribution only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn

from multiembed.nn.association import GumbelAssociation
from multiembed.nn.extractors import DCMExtractor
from multiembed.nn.retrieval import RetrievalModel


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: world size, rank, device, and whether we own the group."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def lead(self) -> bool:
        """Rank 0: the only writer of files and progress."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def sum(self, value: Tensor) -> Tensor:
        """All-reduced sum of a tensor (itself in one process)."""
        if self.world_size == 1:
            return value
        out = value.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def setup(device: str | None = None) -> DistContext:
    """Join the torchrun job described by the environment, or run as one process.

    ``device`` None picks ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    default = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(default if device is None else device)
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device(f"cuda:{local_rank}")
    if world <= 1:
        return DistContext(device=chosen)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistContext(
        world_size=dist.get_world_size(),
        rank=dist.get_rank(),
        local_rank=local_rank,
        device=chosen,
        owns_group=owns,
    )


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """``module`` in `DistributedDataParallel` when distributed, else itself."""
    if ctx.world_size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        module,
        device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
        forward_sync_buffers=False,  # buffers (the item feature table) never change
    )


class _GatherRows(torch.autograd.Function):
    """All-gather rows from every rank; backward: sum the gradients, keep the local rows."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list[int], rank: int) -> Tensor:
        ctx.sizes, ctx.rank = sizes, rank
        longest = max(sizes)
        padded = x.new_zeros((longest, *x.shape[1:]))  # all_gather needs equal shapes
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)  # d(sum of every rank's loss)/d rows
        start = sum(ctx.sizes[: ctx.rank])
        return total[start : start + ctx.sizes[ctx.rank]], None, None


def gather_rows(x: Tensor, ctx: DistContext, sizes: list[int]) -> Tensor:
    """``[b_r, *S]`` on rank r -> ``[sum b, *S]`` in rank order, differentiable (see module doc)."""
    if ctx.world_size == 1:
        return x
    return _GatherRows.apply(x, sizes, ctx.rank)


@dataclass(frozen=True)
class _Stream:
    generator: torch.Generator
    dtype: torch.dtype
    per_row: int


class RowStreams:
    """The model's generators, split into per-row streams and shared ones (see module doc)."""

    def __init__(self, model: RetrievalModel) -> None:
        self.rows: list[_Stream] = []
        self.shared: list[torch.Generator] = []
        for module in model.modules():
            generator = getattr(module, "generator", None)
            if not isinstance(generator, torch.Generator):
                continue
            if isinstance(module, DCMExtractor):  # farthest_point_init: one float64 per row
                self.rows.append(_Stream(generator, torch.float64, 1))
            elif isinstance(module, GumbelAssociation):  # one float per row and slot
                self.rows.append(_Stream(generator, torch.get_default_dtype(), model.k))
            else:
                self.shared.append(generator)

    @contextlib.contextmanager
    def aligned(self, ctx: DistContext, sizes: list[int]) -> Iterator[None]:
        """Within the block, rank r's per-row generators draw exactly its rows' numbers."""
        if ctx.world_size == 1:
            yield
            return
        before = sum(sizes[: ctx.rank])
        after = sum(sizes) - before - sizes[ctx.rank]
        self._skip(before)
        yield
        self._skip(after)
        if len(set(sizes)) > 1:  # uneven shards drew unevenly from the shared streams
            for generator in self.shared:
                state = generator.get_state().to(ctx.device)
                dist.broadcast(state, src=0)
                generator.set_state(state.cpu())

    def _skip(self, rows: int) -> None:
        for s in self.rows:
            if rows * s.per_row:
                torch.rand(rows * s.per_row, dtype=s.dtype, generator=s.generator)


def shard_bounds(ctx: DistContext, n: int) -> tuple[int, int, list[int]]:
    """``(start, stop, sizes)`` of this rank's slice of an ``n``-row global batch; ``sizes``
    are the rows on each rank (`np.array_split` sizes).

    Example:
        >>> shard_bounds(DistContext(world_size=3, rank=1), 8)
        (3, 6, [3, 3, 2])
    """
    base, extra = divmod(n, ctx.world_size)
    sizes = [base + (1 if r < extra else 0) for r in range(ctx.world_size)]
    start = sum(sizes[: ctx.rank])
    return start, start + sizes[ctx.rank], sizes
