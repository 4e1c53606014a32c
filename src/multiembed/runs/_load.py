"""Loading a run directory back (`load_run`), every file it trusts verified first.

The layout and the writing side are `multiembed.runs._rundir`'s.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, NamedTuple

from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from torch import Tensor

from multiembed._files import SealError, open_sealed_json, sha256_file
from multiembed.config import Config, parse, read_toml
from multiembed.errors import ConfigError, MultiembedError
from multiembed.nn.features import ItemFeatures
from multiembed.runs._features import load_item_features
from multiembed.runs._model import TrainableModel, model_label, trainable_from_config
from multiembed.runs._rundir import (
    CONFIG_FILE,
    FEATURE_PARTS,
    FEATURES_FILE,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    check_data_dir,
    model_version,
)
from multiembed.runs.errors import RunIntegrityError


class LoadedRun(NamedTuple):
    """A verified run directory, ready to embed users and items.

    Attributes:
        config: the resolved `Config` the model was trained with, ``model.k`` the
            number of interests it serves (the manifest's ``training.interests``).
        model: the `RetrievalModel` (``model.kind = "implicit"``) or
            `ConditionalRetrievalModel` (``"explicit"``) with the trained weights, in
            eval mode, on the requested device.
        features: the `ItemFeatures` table the model embeds items from.
        manifest: the parsed ``manifest.json``.
        model_version: ``<model>-<12 hex>`` (config and weights hash).
        run_dir: the directory it was loaded from (``run_dir / "vocab"`` maps ids
            back to raw ids).
    """

    config: Config
    model: TrainableModel
    features: ItemFeatures
    manifest: dict[str, Any]
    model_version: str
    run_dir: Path


def load_run(
    run_dir: str | Path, *, data_dir: str | Path | None = None, device: str = "cpu"
) -> LoadedRun:
    """Load and verify a run directory written by `train`.

    Checks, in order: the manifest parses, has the expected format and its own
    checksum; every file it lists exists with the recorded size and SHA-256;
    ``data_dir``, when given, has the data fingerprint the run was trained on;
    ``config.toml`` is a valid config; the weights' names and shapes are exactly
    those of the model the config builds; the model version matches.

    Args:
        run_dir: the run directory.
        data_dir: a prepared data directory to use with the run: it must be the
            data the run was trained on (`check_data_dir`); item features are
            then taken from it instead of the run's copy.
        device: where to put the model.

    Raises:
        RunIntegrityError: naming the file and the problem.
    """
    run = Path(run_dir)
    manifest = _read_manifest(run)
    for name, entry in manifest["files"].items():
        _verify_file(run / name, entry)
    try:
        stated = read_toml(run / CONFIG_FILE)
        config = parse(Config, with_earlier_behaviour(stated), source=str(run / CONFIG_FILE))
    except ConfigError as err:
        raise RunIntegrityError(run / CONFIG_FILE, str(err)) from err
    config = _served(config, manifest)
    weights = with_current_names(_read_tensors(run / WEIGHTS_FILE))
    if data_dir is None:
        features = _read_features(run / FEATURES_FILE)
    else:
        check_data_dir(run, manifest, Path(data_dir))
        features = _features_from_data(Path(data_dir), manifest)
    try:
        model = trainable_from_config(config, features, n_topics=int(manifest["n_topics"]))
    except (MultiembedError, ValueError) as err:
        raise RunIntegrityError(run / CONFIG_FILE, f"cannot build its model ({err})") from err
    problems = _shape_problems(model.state_dict(), weights)
    if problems:
        raise RunIntegrityError(
            run / WEIGHTS_FILE,
            f"does not match {CONFIG_FILE} (model {model_label(config)}): " + "; ".join(problems),
        )
    model.load_state_dict(weights)
    kind = manifest.get("kind", "implicit")  # runs written before explicit models existed
    if kind != config.model.kind:
        raise RunIntegrityError(
            run / MANIFEST_FILE,
            f"kind {kind!r} does not match {CONFIG_FILE} (model.kind = {config.model.kind!r})",
        )
    version = model_version(model_label(config), stated, manifest["files"][WEIGHTS_FILE]["sha256"])
    if version != manifest.get("model_version"):
        raise RunIntegrityError(
            run / MANIFEST_FILE,
            f"model_version {manifest.get('model_version')!r} does not match config and "
            f"weights ({version!r})",
        )
    model.to(device).eval()
    return LoadedRun(config, model, features, manifest, version, run)


EARLIER_BEHAVIOUR: dict[str, dict[str, Any]] = {
    "model": {
        "dcm_affinity": "dot",
        "dcm_pool": "mean",
        "dcm_scale": "mass",
        "history_negatives": "keep",
        "global_interest": False,
        "summary_global_only": False,
    },
}
"""Settings added after runs were first written, with the value that reproduces a run
written before the setting existed (its ``config.toml`` lacks the key). A run keeps
the model it was trained as when a later release changes such a setting's default.
``dcm_iterations`` is filled in from the run's own ``iterations``, which DCM read
before (`with_earlier_behaviour`)."""

RETIRED_SETTINGS: dict[str, dict[str, Any]] = {"model": {"dcm_recency": 0.0, "dcm_whole_rows": 0.0}}
"""Settings a later release removed, with the value that the model still reproduces:
a run that states it loads (the key is dropped); any other value is refused as an
unknown setting."""


def _served(config: Config, manifest: dict[str, Any]) -> Config:
    """``config`` with ``model.k`` the number of interests the run serves: the manifest's
    ``training.interests.served_k`` (``train.select_interests``), else as trained."""
    interests = manifest.get("training", {}).get("interests") or {}
    served = interests.get("served_k")
    if not isinstance(served, int) or served == config.model.k:
        return config
    return dataclasses.replace(config, model=dataclasses.replace(config.model, k=served))


def with_earlier_behaviour(stated: dict[str, Any]) -> dict[str, Any]:
    """``stated`` (a run's ``config.toml``) with `EARLIER_BEHAVIOUR`'s value for each
    setting it lacks and without the `RETIRED_SETTINGS` it states at their kept value;
    the run's other values are kept.

    Example:
        >>> with_earlier_behaviour({"model": {"name": "dcm"}})["model"]["dcm_affinity"]
        'dot'
        >>> with_earlier_behaviour({"model": {"dcm_affinity": "cosine"}})["model"]["dcm_affinity"]
        'cosine'
        >>> with_earlier_behaviour({"model": {"name": "dcm"}})["model"]["dcm_pool"]
        'mean'
        >>> with_earlier_behaviour({"model": {"name": "dcm"}})["model"]["dcm_scale"]
        'mass'
        >>> "dcm_whole_rows" in with_earlier_behaviour({"model": {"dcm_whole_rows": 0.0}})["model"]
        False
        >>> with_earlier_behaviour({"model": {"iterations": 2}})["model"]["dcm_iterations"]
        2
        >>> with_earlier_behaviour({"model": {"name": "single"}})["model"]["history_negatives"]
        'keep'
        >>> was_false = with_earlier_behaviour({"model": {"history_negatives": False}})
        >>> was_false["model"]["history_negatives"]
        'drop'
    """
    out = dict(stated)
    for section, values in EARLIER_BEHAVIOUR.items():
        table = stated.get(section, {})
        if isinstance(table, dict):
            retired = RETIRED_SETTINGS.get(section, {})
            kept = {k: v for k, v in table.items() if k not in retired or v != retired[k]}
            out[section] = values | kept
    model = out.get("model")
    if isinstance(model, dict) and "dcm_iterations" not in model:  # DCM read `iterations`
        out["model"] = model = model | {"dcm_iterations": model.get("iterations", _EARLIER_ROUNDS)}
    if isinstance(model, dict) and isinstance(model.get("history_negatives"), bool):
        # written while the setting was a boolean: true kept them, false dropped them
        value = "keep" if model["history_negatives"] else "drop"
        out["model"] = model | {"history_negatives": value}
    return out


_EARLIER_ROUNDS = 3  # `iterations`' default, the rounds DCM routed before `dcm_iterations`


RENAMED_WEIGHTS: tuple[tuple[str, str], ...] = (
    ("user_tower.extractor.", "user_tower.conditions.extractor."),
    ("user_tower.condition_proj.", "user_tower.condition_field."),
    ("user_tower.condition_table.", "user_tower.condition_field."),
)
"""Weight names of runs written before the implicit and explicit user towers became one
`UserTower`, and their names now (the tensors, and their order, are unchanged)."""


def with_current_names(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """``tensors`` (weights, or a checkpoint's tensors with their prefixes) with every
    name written before a rename of `RENAMED_WEIGHTS` given its current name.

    Example:
        >>> sorted(with_current_names({"user_tower.condition_table.weight": 0, "best.x": 1}))
        ['best.x', 'user_tower.condition_field.weight']
    """
    out = {}
    for name, tensor in tensors.items():
        for old, new in RENAMED_WEIGHTS:
            if name.startswith(old) or f".{old}" in name:
                name = name.replace(old, new, 1)
        out[name] = tensor
    return out


def _read_manifest(run: Path) -> dict[str, Any]:
    path = run / MANIFEST_FILE
    if not run.is_dir():
        raise RunIntegrityError(run, "not a directory (expected a run directory from train)")
    if not path.is_file():
        raise RunIntegrityError(
            path, "missing (the run has not finished, or this is not a run directory)"
        )
    data = path.read_bytes()
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunIntegrityError(path, f"not valid JSON, truncated or corrupt ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunIntegrityError(path, f"not a run manifest (expected format {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RunIntegrityError(
            path,
            f"format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION} "
            "(written by another version of multiembed: train the run again)",
        )
    try:
        manifest = open_sealed_json(data)
    except SealError as err:
        raise RunIntegrityError(path, str(err)) from err
    files = manifest.get("files")
    required = {CONFIG_FILE, WEIGHTS_FILE, FEATURES_FILE}
    if not isinstance(files, dict) or not required <= set(files):
        raise RunIntegrityError(path, f"lists no checksums for {sorted(required)}")
    data_entry = manifest.get("data")
    if not (
        isinstance(data_entry, dict)
        and isinstance(data_entry.get("files"), dict)
        and isinstance(data_entry.get("fingerprint"), str)
    ):
        raise RunIntegrityError(path, "has no data fingerprint")
    for key in ("model_version", "n_topics"):
        if key not in manifest:
            raise RunIntegrityError(path, f"has no {key}")
    return manifest


def _verify_file(path: Path, entry: Any) -> None:
    if not isinstance(entry, dict) or "sha256" not in entry or "bytes" not in entry:
        raise RunIntegrityError(path, "manifest entry lacks sha256 or bytes")
    if not path.is_file():
        raise RunIntegrityError(path, "missing (listed in manifest.json)")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise RunIntegrityError(
            path, f"size {size} bytes, manifest.json says {entry['bytes']} (truncated or changed)"
        )
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise RunIntegrityError(
            path,
            f"checksum mismatch: sha256 {digest[:16]}..., manifest.json says "
            f"{str(entry['sha256'])[:16]}... (corrupt or changed)",
        )


def _read_tensors(path: Path) -> dict[str, Tensor]:
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise RunIntegrityError(path, f"not a readable safetensors file ({err})") from err


def _read_features(path: Path) -> ItemFeatures:
    tensors = _read_tensors(path)
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata() or {}
    try:
        n_items = int(meta["n_items"])
        features = ItemFeatures(n_items, **{k: tensors.get(k) for k in FEATURE_PARTS})
        features.check()
    except (KeyError, ValueError) as err:
        raise RunIntegrityError(path, f"not an item feature table ({err})") from err
    return features


def _features_from_data(data_dir: Path, manifest: dict[str, Any]) -> ItemFeatures:
    features = load_item_features(data_dir)
    if features.n_items != manifest.get("n_items"):
        raise RunIntegrityError(
            data_dir / "items.parquet",
            f"has {features.n_items} item ids, the run was trained on {manifest.get('n_items')}",
        )
    return features


def _shape_problems(expected: dict[str, Tensor], got: dict[str, Tensor]) -> list[str]:
    problems = [f"missing {k}" for k in expected if k not in got]
    problems += [f"unexpected {k}" for k in got if k not in expected]
    problems += [
        f"{k}: weights {list(got[k].shape)} {got[k].dtype}, config builds {list(v.shape)} {v.dtype}"
        for k, v in expected.items()
        if k in got and (got[k].shape != v.shape or got[k].dtype != v.dtype)
    ]
    if len(problems) > 6:
        problems = [*problems[:6], f"... {len(problems) - 6} more"]
    return problems
