"""Every random state a training run depends on, captured and restored for exact resume.

- torch's global CPU generator (and every CUDA device's, when present);
- NumPy's and Python's global generators (the loop draws from neither; they are
  kept so code run inside the loop cannot break an exact resume unnoticed);
- the model's own `torch.Generator` s (DCM's first seed, MIND's initial
  centroids, Gumbel noise), found by walking the module tree.

States are split into tensors (for safetensors) and JSON-able values.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


def model_generators(model: nn.Module) -> dict[str, torch.Generator]:
    """Every `torch.Generator` held as an attribute of a submodule, by dotted path.

    Example:
        >>> from multiembed.nn.extractors import DCMExtractor
        >>> m = nn.Sequential(DCMExtractor(dim=2, k=2, generator=torch.Generator()))
        >>> list(model_generators(m))
        ['0.generator']
    """
    found: dict[str, torch.Generator] = {}
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator):
                found[f"{prefix}.{attr}" if prefix else attr] = value
    return found


def capture(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The current RNG states: ``(tensors, json_values)``, keys prefixed ``rng.``."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    for name, gen in model_generators(model).items():
        tensors[f"rng.model.{name}"] = gen.get_state()
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    tensors["rng.numpy.keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    values = {
        "rng.numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "gauss": gauss},
        "rng.python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }
    return tensors, values


def restore(model: nn.Module, tensors: dict[str, Tensor], values: dict[str, Any]) -> list[str]:
    """Set every RNG state from `capture` output; returns the names of missing states."""
    missing: list[str] = []
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            state = tensors.get(f"rng.cuda.{i}")
            if state is not None:
                torch.cuda.set_rng_state(state, i)
    for name, gen in model_generators(model).items():
        state = tensors.get(f"rng.model.{name}")
        if state is None:
            missing.append(f"rng.model.{name}")
        else:
            gen.set_state(state)
    n = values["rng.numpy"]
    keys = tensors["rng.numpy.keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    p = values["rng.python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    return missing


def seed_all(seed: int) -> None:
    """Seed torch, NumPy and Python global generators (a fresh run's starting point)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
