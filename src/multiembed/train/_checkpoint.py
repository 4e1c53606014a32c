"""Checkpoints: everything needed to continue a run exactly where it stopped.

``RUN/checkpoint/checkpoint.safetensors`` is one file, replaced atomically
(temporary file, fsync, rename, directory fsync; temporaries a killed save left
behind are removed by the next save), that checks every one of its bytes
(`multiembed.train._safetensors`: the JSON document as much as the tensors), holding:

- ``model.*``: the model's state dict;
- ``optim.*``: the optimiser's per-parameter state (param groups in the JSON);
- ``freq.*``: the streaming frequency estimator (logQ) buffers;
- ``rng.*``: every RNG state (`multiembed.train._rng`);
- ``best.*``: the weights of the best validation so far (`Selection`);
- the JSON document: format version, `Position` in the data order, the config
  it was trained with, the optimiser's param groups, NumPy/Python RNG states,
  the model selection's scores and counts.

Resuming with a config that would change the trajectory (anything but the
epoch count, step limit, logging, checkpoint interval, thread count and
validation settings) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from multiembed._files import remove_stale_temps
from multiembed.config import Config, to_dict
from multiembed.data.frequency import FrequencyEstimator
from multiembed.runs import with_current_names
from multiembed.train import _rng, _safetensors
from multiembed.train._selection import Selection
from multiembed.train.errors import RunIntegrityError

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "checkpoint.safetensors"
KIND = "multiembed-checkpoint-2"  # 2: a whole-file checksum covers the JSON document

# Settings that do not change the sequence of updates: a resumed run may differ in them.
_FREE = {("train", k) for k in ("epochs", "max_steps", "log_every", "checkpoint_every", "threads")}
_TRAJECTORY_SECTIONS = ("split", "examples", "model", "train")
_START_OVER = "start over with --no-resume (resume=False) or a new --out"


class Position(NamedTuple):
    """Where training stands: ``step`` updates done; ``batch`` batches of ``epoch`` done.

    ``without_condition`` counts examples an explicit model's association gave no
    condition (not trained on); ``skipped_batches`` the steps whose batch kept none
    (no update). Both stay 0 for implicit models.
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    examples: int = 0
    without_condition: int = 0
    skipped_batches: int = 0


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR / CHECKPOINT_FILE


def save(
    run_dir: Path,
    *,
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    estimator: FrequencyEstimator,
    position: Position,
    config: Config,
    selection: Selection,
) -> None:
    """Write the checkpoint of the current state atomically."""
    tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(selection.tensors())
    tensors.update({f"freq.{k}": v for k, v in estimator.state_dict().items()})
    optim = optimiser.state_dict()
    optim_values: dict[str, dict[str, Any]] = {}
    for index, state in optim["state"].items():
        for name, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                optim_values.setdefault(str(index), {})[name] = value
    rng_tensors, rng_values = _rng.capture(model)
    tensors.update(rng_tensors)
    document = {
        "position": position._asdict(),
        "config": to_dict(config),
        "optim_param_groups": optim["param_groups"],
        "optim_values": optim_values,
        "rng": rng_values,
        "selection": selection.document(),
    }
    path = checkpoint_path(run_dir)
    remove_stale_temps(path.parent)
    _safetensors.write(path, tensors, document, KIND)


def config_differences(saved: dict[str, Any], config: Config) -> list[str]:
    """Settings of ``config`` that differ from the checkpoint's and would change training."""
    now = to_dict(config)
    out = []
    for section in _TRAJECTORY_SECTIONS:
        old, new = saved.get(section, {}), now.get(section, {})
        for key in sorted(set(old) | set(new)):
            if (section, key) not in _FREE and old.get(key) != new.get(key):
                out.append(f"{section}.{key} = {new.get(key)!r} (checkpoint: {old.get(key)!r})")
    return out


def load(
    run_dir: Path,
    *,
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    estimator: FrequencyEstimator,
    config: Config,
    selection: Selection,
) -> Position:
    """Restore model, optimiser, estimator, selection and RNG states; returns the `Position`.

    Raises:
        RunIntegrityError: the file is damaged, or was written for another config
            or model (the message lists the differing settings).
    """
    path = checkpoint_path(run_dir)
    try:
        tensors, doc = _safetensors.read(path, KIND)
        tensors = with_current_names(tensors)  # a checkpoint of an earlier release
    except RunIntegrityError as err:
        raise RunIntegrityError(path, f"{err.problem}; {_START_OVER}") from err
    differences = config_differences(doc.get("config", {}), config)
    if differences:
        raise RunIntegrityError(
            path,
            "written with another configuration: "
            + "; ".join(differences)
            + f" (use the same settings, or {_START_OVER})",
        )
    try:
        model.load_state_dict(_strip(tensors, "model."))
        estimator.load_state_dict(_strip(tensors, "freq."))
        state: dict[int, dict[str, Any]] = {}
        for key, value in _strip(tensors, "optim.").items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        for index, values in doc["optim_values"].items():
            state.setdefault(int(index), {}).update(values)
        groups = [
            {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
            for g in doc["optim_param_groups"]
        ]
        optimiser.load_state_dict({"state": state, "param_groups": groups})
        missing = _rng.restore(model, tensors, doc["rng"])
        position = Position(**doc["position"])
        selection.load(doc["selection"], tensors)
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise RunIntegrityError(path, f"does not match the model ({err})") from err
    if missing:
        raise RunIntegrityError(path, f"lacks the RNG states {missing}")
    return position


def _strip(tensors: dict[str, Tensor], prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
