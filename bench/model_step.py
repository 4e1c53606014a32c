"""Benchmark: one training step (forward + backward of the Eq. 9 loss) per implicit model.

Builds each model with `multiembed.nn.builders.build_model` on a synthetic item
table and times `loss(batch, log_q)` + `backward()` on a fixed batch: the median
of `--steps` timed steps after `--warmup` untimed ones, the models taking turns
step by step (so load from other processes skews no ratio). Prints one JSON line
per model:

    {"model": "dcm", "step_ms": ..., "examples_per_s": ..., "step_cpu_ms": ..., ...}

Each model is built at the library's defaults (`multiembed.config.ModelConfig`:
embedding width 32, K = 4, hidden 64, temperature 0.2, best-embedding scoring, the
small DHEN preset) on a batch of 512 histories of length 50, so the figures are
those of what `multiembed train` trains; ``--dim``, ``--k`` and ``--hidden-dim``
override the sizes (``--dim 64 --k 7 --hidden-dim 128`` is the paper's serving
shape scaled to a CPU box). With
``--share-items both`` (the default) each model is timed twice, as the paper's
separate towers (``"share_items": false``) and with one item summariser shared by
both towers and the crossing as a residual (``true``, the library's default), so the
cost of that default is read as a ratio from one run. ``--autocast both`` times each
model also under ``torch.autocast(dtype=torch.bfloat16)`` on the same device, side by
side, for CPUs with bf16 instructions (``avx512_bf16``, AMX) and GPUs. Extra keys
say what was measured (device, preset, threads) and `extract_ms`, the forward +
backward time of the interest extractor alone on the same batch's summaries, so
the cost of routing and initialisation can be told apart from the crossing;
`step_cpu_ms` and `extract_cpu_ms` are the same medians in process CPU time,
which other jobs on a shared machine disturb less than the wall time.

    python bench/model_step.py
    python bench/model_step.py --preset paper --steps 10
    python bench/model_step.py --dim 64 --k 7 --hidden-dim 128
    python bench/model_step.py --device cuda
    python bench/model_step.py --models single dcm --share-items on
    python bench/model_step.py --models single dcm --share-items on --autocast both
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable

import torch

from machine import cpu_name
from multiembed.config import ModelConfig
from multiembed.nn.builders import MODEL_NAMES, build_model
from multiembed.nn.features import ItemFeatures, encode_items
from multiembed.nn.retrieval import RetrievalBatch, RetrievalModel


def synthetic_features(n_items: int, vector_dim: int, seed: int) -> ItemFeatures:
    """A random item table: clustered vectors (3% missing), two categoricals, topics."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(64, vector_dim, generator=g)
    cluster = torch.randint(0, 64, (n_items,), generator=g)
    vector = centres[cluster] + 0.3 * torch.randn(n_items, vector_dim, generator=g)
    present = torch.rand(n_items, generator=g) > 0.03
    codes = torch.randint(-1, 16, (n_items, 2), generator=g)
    topics = torch.stack([cluster % 24, torch.full((n_items,), -1)], dim=1)
    return ItemFeatures(n_items, vector=vector, vector_present=present, codes=codes, topics=topics)


def synthetic_batch(n_items: int, batch: int, length: int, seed: int) -> RetrievalBatch:
    """Histories of random length (at least a fifth of ``length``), right-aligned."""
    g = torch.Generator().manual_seed(seed)
    history = torch.randint(0, n_items, (batch, length), generator=g)
    keep = torch.randint(length // 5, length + 1, (batch, 1), generator=g)
    history = history.masked_fill(torch.arange(length) < length - keep, -1)
    valid = (history >= 0) & (torch.rand(batch, length, generator=g) > 0.05)
    return RetrievalBatch(history, valid, torch.randint(0, n_items, (batch,), generator=g))


def timed_ms(step: Callable[[], None], device: torch.device) -> tuple[float, float]:
    """Wall and process CPU time of one call of ``step`` in milliseconds, synchronising
    the device. CPU time counts this process only, so other jobs on a shared machine
    inflate it far less than the wall time."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, cpu = time.perf_counter(), time.process_time()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 1000.0 * (time.perf_counter() - start), 1000.0 * (time.process_time() - cpu)


def steps_of(
    model: RetrievalModel, batch: RetrievalBatch, log_q: torch.Tensor, bf16: bool = False
) -> dict[str, Callable[[], None]]:
    """The two timed steps of a model: the whole training step, the extractor alone;
    with ``bf16`` the forwards run under bf16 autocast (the backwards follow it)."""
    model.train()
    device = log_q.device.type

    def full_step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = model.loss(batch, log_q)
        loss.backward()

    tower = model.user_tower
    history = model.features().lookup(batch.history)
    with torch.no_grad():
        e = encode_items(tower.summariser, history)  # type: ignore[attr-defined]
    e.requires_grad_()
    mask = batch.history >= 0

    def extract_step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            interests = tower.conditions.extractor(  # type: ignore[attr-defined]
                e, mask, batch.history_valid & mask, item_ids=batch.history
            )
        interests.conditions.float().sum().backward()

    return {"step_ms": full_step, "extract_ms": extract_step}


def measure_interleaved(
    steps: dict[str, dict[str, Callable[[], None]]], device: torch.device, warmup: int, n: int
) -> dict[str, dict[str, float]]:
    """Median milliseconds per model and step kind, wall (``kind``) and CPU (``kind_cpu``).

    Models take turns step by step, so load from other processes on a shared machine
    falls on all of them alike and their ratios stay meaningful.
    """
    times: dict[str, dict[str, list[float]]] = {
        name: {k: [] for kind in kinds for k in (kind, f"{kind}_cpu")}
        for name, kinds in steps.items()
    }
    for i in range(warmup + n):
        for name, kinds in steps.items():
            for kind, step in kinds.items():
                elapsed, cpu = timed_ms(step, device)
                if i >= warmup:
                    times[name][kind].append(elapsed)
                    times[name][f"{kind}_cpu"].append(cpu)
    return {
        name: {kind: statistics.median(values) for kind, values in kinds.items()}
        for name, kinds in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--preset", default=None, choices=["small", "paper"], help="DHEN sizes")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--dim", type=int, default=None, help="embedding width (library default)")
    parser.add_argument("--k", type=int, default=None, help="interests K (library default)")
    parser.add_argument("--hidden-dim", type=int, default=None, help="(library default)")
    parser.add_argument("--n-items", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument(
        "--share-items",
        default="both",
        choices=["off", "on", "both"],
        help="time the separate towers (off), the shared summariser (on), or both",
    )
    parser.add_argument(
        "--autocast",
        default="off",
        choices=["off", "bf16", "both"],
        help="time in float32 (off), under bf16 autocast (bf16), or both side by side",
    )
    args = parser.parse_args()
    shares = {"off": [False], "on": [True], "both": [False, True]}[args.share_items]
    precisions = {"off": [False], "bf16": [True], "both": [False, True]}[args.autocast]

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    features = synthetic_features(args.n_items, vector_dim=32, seed=0)
    batch = synthetic_batch(args.n_items, args.batch, args.seq_len, seed=1)
    batch = RetrievalBatch(
        batch.history.to(device), batch.history_valid.to(device), batch.target.to(device)
    )
    log_q = torch.full((args.batch,), -float(torch.log(torch.tensor(args.n_items))), device=device)
    steps = {}
    configs: list[ModelConfig] = []
    variants = [
        (name, share, bf16) for name in args.models for share in shares for bf16 in precisions
    ]
    for name, share, bf16 in variants:
        sizes = {"dim": args.dim, "k": args.k, "hidden_dim": args.hidden_dim}
        sizes["dhen_preset"] = args.preset
        config = dataclasses.replace(
            ModelConfig(),
            name=name,
            share_items=share,
            seed=0,
            **{key: value for key, value in sizes.items() if value is not None},
        )
        configs.append(config)
        model = build_model(config, features=features).to(device)
        steps[f"{name}/{share}/{bf16}"] = steps_of(model, batch, log_q, bf16)
    timings = measure_interleaved(steps, device, args.warmup, args.steps)
    for (name, share, bf16), timing in zip(variants, timings.values(), strict=True):
        record = {
            "model": name,
            "share_items": share,
            "autocast": "bf16" if bf16 else "off",
            "step_ms": round(timing["step_ms"], 2),
            "examples_per_s": round(args.batch / timing["step_ms"] * 1000.0, 1),
            "extract_ms": round(timing["extract_ms"], 2),
            "step_cpu_ms": round(timing["step_ms_cpu"], 2),
            "extract_cpu_ms": round(timing["extract_ms_cpu"], 2),
            "device": str(device),
            "preset": configs[0].dhen_preset,
            "dim": configs[0].dim,
            "k": configs[0].k,
            "threads": torch.get_num_threads(),
            "cpu": cpu_name(),
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
