"""The run directory: what a finished training run leaves behind, and writing it.

Layout (``RUN/``)::

    config.toml             the resolved configuration (every setting, defaults included)
    vocab/                  copy of the data directory's id vocabularies (raw ids <-> ids)
    weights.safetensors     the model's state dict (never a pickle)
    features.safetensors    the item feature table the model embeds items from
    frequency.safetensors   the streaming frequency estimator (logQ) state
    metrics.jsonl           one line per logged step and per validation (HR@K)
    manifest.json           SHA-256 and size of every file above, model kind
                            ("implicit" | "explicit") and name, model_version,
                            library version, training counts, the fingerprint of
                            the data trained on, and a checksum of itself (written last)
    checkpoint/             working state for resuming (not in the manifest: it
                            carries its own whole-file checksum)

Loading it back, with every check, is `multiembed.runs._load`'s.
Every byte a loader trusts is checked: the manifest's own checksum covers its
fields (and its exact bytes must be those written), its SHA-256 entries cover
the files it lists.

``model_version`` is ``<model name>-<12 hex>`` (the name is ``model.name``, or
``cr_<condition>`` for an explicit model), a hash of the resolved config and
the weights' checksum: the same config and weights give the same version.

The *data fingerprint* is a SHA-256 over the checksums of the data directory's
vocabularies (every file of ``vocab/``) and item table (``items.parquet``): what
gives ids their meaning. A command that reads a run with a data directory
(evaluate, serve, retrieve, export) refuses a directory with another
fingerprint (`check_data_dir`); engagements may grow, ids may not change.

Writing a run removes ``RUN/index/``: an item index embeds the weights it was
built with, and ``serve`` / ``retrieve`` rebuild a missing one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save

import multiembed
from multiembed._files import (
    atomic_write_bytes,
    fsync_dir,
    remove_stale_temps,
    seal_json,
    sha256_file,
)
from multiembed.config import Config, to_dict
from multiembed.data.frequency import FrequencyEstimator
from multiembed.data.schema import ITEMS_FILE, VOCAB_DIR
from multiembed.nn.features import ItemFeatures
from multiembed.runs import _toml
from multiembed.runs._metrics import METRICS_FILE
from multiembed.runs._model import TrainableModel, model_label
from multiembed.runs.errors import RunIntegrityError

CONFIG_FILE = "config.toml"
WEIGHTS_FILE = "weights.safetensors"
FEATURES_FILE = "features.safetensors"
FREQUENCY_FILE = "frequency.safetensors"
MANIFEST_FILE = "manifest.json"
INDEX_DIR = "index"
FORMAT = "multiembed-run"
FORMAT_VERSION = 2  # 2: the manifest's own checksum and the data fingerprint
FEATURE_PARTS = ("vector", "vector_present", "codes", "topics")


def write_config(run_dir: Path, config: Config) -> None:
    """Write ``RUN/config.toml``, the resolved config, atomically."""
    text = _toml.dumps(to_dict(config))
    atomic_write_bytes(run_dir / CONFIG_FILE, text.encode())


def model_version(name: str, config: Config | dict[str, Any], weights_sha256: str) -> str:
    """``<name>-<12 hex>`` of the config and the weights' checksum.

    ``config`` may be the settings as ``config.toml`` states them (a dict): a run
    written before a setting existed keeps the version it was written with.

    Example:
        >>> version = model_version("dcm", Config(), "0" * 64)
        >>> version == model_version("dcm", Config(), "0" * 64)
        True
        >>> version == model_version("dcm", to_dict(Config()), "0" * 64)
        True
    """
    settings = config if isinstance(config, dict) else to_dict(config)
    payload = json.dumps({"config": settings, "weights": weights_sha256}, sort_keys=True)
    return f"{name}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def write_run(
    run_dir: Path,
    *,
    config: Config,
    data_dir: Path,
    model: TrainableModel,
    features: ItemFeatures,
    estimator: FrequencyEstimator,
    n_topics: int,
    training: dict[str, Any],
) -> str:
    """Write the run's artifacts and, last, its manifest; returns the model version.

    An item index of earlier weights (``RUN/index``) is removed, and so are
    temporary files that killed writes left behind.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / MANIFEST_FILE).unlink(missing_ok=True)
    remove_stale_temps(run_dir)
    if (run_dir / INDEX_DIR).is_dir():
        shutil.rmtree(run_dir / INDEX_DIR)
    write_config(run_dir, config)
    _copy_vocab(data_dir / VOCAB_DIR, run_dir / VOCAB_DIR)
    _write_tensors(run_dir / WEIGHTS_FILE, model.state_dict(), {"model": model_label(config)})
    parts = {k: getattr(features, k) for k in FEATURE_PARTS if getattr(features, k) is not None}
    _write_tensors(run_dir / FEATURES_FILE, parts, {"n_items": str(features.n_items)})
    freq_meta = {
        "num_buckets": str(estimator.num_buckets),
        "identity": str(estimator.identity),
        "alpha": repr(estimator.alpha),
    }
    _write_tensors(run_dir / FREQUENCY_FILE, estimator.state_dict(), freq_meta)

    files = [CONFIG_FILE, WEIGHTS_FILE, FEATURES_FILE, FREQUENCY_FILE]
    files += sorted(
        str(p.relative_to(run_dir)) for p in (run_dir / VOCAB_DIR).rglob("*") if p.is_file()
    )
    if (run_dir / METRICS_FILE).is_file():
        files.append(METRICS_FILE)
    checksums = {
        name: {"sha256": sha256_file(run_dir / name), "bytes": (run_dir / name).stat().st_size}
        for name in files
    }
    version = model_version(model_label(config), config, str(checksums[WEIGHTS_FILE]["sha256"]))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": multiembed.__version__,
        "torch_version": torch.__version__,
        "kind": config.model.kind,
        "model": model_label(config),
        "model_version": version,
        "n_items": features.n_items,
        "n_topics": n_topics,
        "training": training,
        "data": data_fingerprint(data_dir),
        "files": checksums,
    }
    write_manifest(run_dir, manifest)
    return version


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write `tensors` as a safetensors file atomically, from contiguous CPU copies (a state
    dict's tensors may share storage, which safetensors refuses)."""
    copies = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(copies, metadata=metadata))


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``RUN/manifest.json`` with its own checksum, atomically."""
    atomic_write_bytes(run_dir / MANIFEST_FILE, seal_json(manifest))


def data_fingerprint(data_dir: Path) -> dict[str, Any]:
    """The data directory, the SHA-256 of its vocabularies and item table, and their digest.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "items.parquet").write_bytes(b"items")
        >>> f = data_fingerprint(d)
        >>> sorted(f["files"]), len(f["fingerprint"])
        (['items.parquet'], 64)
    """
    vocab = sorted(f"{VOCAB_DIR}/{p.name}" for p in (data_dir / VOCAB_DIR).glob("*") if p.is_file())
    names = [ITEMS_FILE, *vocab]
    files = {name: sha256_file(data_dir / name) for name in names if (data_dir / name).is_file()}
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"dir": str(data_dir.resolve()), "fingerprint": digest, "files": files}


def check_data_dir(run_dir: Path, manifest: dict[str, Any], data_dir: Path) -> None:
    """Refuse ``data_dir`` unless its fingerprint is the one the run was trained on.

    Raises:
        RunIntegrityError: naming both directories, both fingerprints and the
            files that differ.
    """
    recorded = manifest["data"]
    if not data_dir.is_dir():
        raise RunIntegrityError(data_dir, "no such data directory")
    now = data_fingerprint(data_dir)
    if now["fingerprint"] == recorded["fingerprint"]:
        return
    names = sorted(set(now["files"]) | set(recorded["files"]))
    differ = [n for n in names if now["files"].get(n) != recorded["files"].get(n)]
    raise RunIntegrityError(
        data_dir,
        f"not the data the run {run_dir} was trained on: data fingerprint "
        f"{now['fingerprint'][:12]}, the run's is {recorded['fingerprint'][:12]} "
        f"(trained on {recorded['dir']}); differing: {', '.join(differ)}. Pass the data "
        "directory the run was trained on, or train a run on this one",
    )


def _copy_vocab(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if source.is_dir():
        for path in sorted(source.iterdir()):
            if path.is_file():
                atomic_write_bytes(target / path.name, path.read_bytes())
    fsync_dir(target)
