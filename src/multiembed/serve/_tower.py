"""The user tower as its exported ONNX graph, run by onnxruntime, for per-request histories.

At a batch of one history the PyTorch tower spends most of its time dispatching
small operations (a DCM tower runs a few hundred); onnxruntime runs the same
traced graph (`multiembed.onnx.export_onnx`, parity-checked at export) in about
half that time on a CPU (README, "Benchmarks"). `OnnxUserTower` loads such an
export, checks it against the run it serves (the sidecar's checksum, the graph's
SHA-256, the model version, K, D and L) and embeds ``[B, L]`` histories.

onnxruntime is an optional package (``pip install 'multiembed[onnx]'``); it is
imported when a tower is loaded, not with this module.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from multiembed._files import content_checksum
from multiembed.errors import ConfigError
from multiembed.runs import RunIntegrityError, UserBatch

SIDECAR = "onnx.json"
"""The export's contract file (`multiembed.onnx.SIDECAR_FILE`)."""


class OnnxUserTower:
    """A run's user tower exported by ``multiembed export-onnx``, run by onnxruntime.

    Args:
        directory: the export's folder (``user_tower.onnx`` and ``onnx.json``).
        model_version: the version of the run it must belong to (None: any).
        k, dim, seq_len: the shapes the run serves (None: as the sidecar says).
        threads: onnxruntime's threads per call (1: the service runs requests in
            parallel, one thread each).

    Raises:
        ConfigError: onnxruntime is not installed, or the export belongs to another
            run (model version, K, D or L differ).
        RunIntegrityError: a file is missing, or fails its checksum.

    Calling it with ``history [B, L]`` int64 (``-1`` pads, right-aligned) and
    ``valid [B, L]`` bool returns a `UserBatch`, as `multiembed.runs.embed_users`
    does, equal up to float rounding (the export's ``parity``).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        model_version: str | None = None,
        k: int | None = None,
        dim: int | None = None,
        seq_len: int | None = None,
        threads: int = 1,
    ) -> None:
        folder = Path(directory)
        spec = _sidecar(folder)
        tower = spec.get("user_tower")
        if not isinstance(tower, dict) or not isinstance(tower.get("file"), str):
            raise RunIntegrityError(folder / SIDECAR, "no user_tower file named")
        graph = folder / tower["file"]
        if not graph.is_file():
            raise RunIntegrityError(graph, "missing (named in onnx.json)")
        model = graph.read_bytes()  # read once: checked, then given to onnxruntime
        if hashlib.sha256(model).hexdigest() != tower.get("sha256"):
            raise RunIntegrityError(graph, "checksum mismatch with onnx.json (edited or corrupt)")
        wanted = {"model_version": model_version, "k": k, "dim": dim, "seq_len": seq_len}
        problems = [
            f"--user-tower {folder}: {key} = {spec.get(key)!r} in onnx.json, the run has {want!r}"
            for key, want in wanted.items()
            if want is not None and spec.get(key) != want
        ]
        if problems:
            raise ConfigError(
                [*problems, "export the served run again: multiembed export-onnx RUN --out DIR"]
            )
        self.directory = folder
        self.model_version: str = spec["model_version"]
        self.k, self.dim, self.seq_len = int(spec["k"]), int(spec["dim"]), int(spec["seq_len"])
        self._session = _session(model, threads)

    def __call__(self, history: np.ndarray, valid: np.ndarray) -> UserBatch:
        """``[B, L]`` histories and validity -> `UserBatch` (``[B, K, D]``, ``[B, K]`` x 2)."""
        emb, mask, imp = self._session.run(
            None,
            {
                "history": np.ascontiguousarray(history, dtype=np.int64),
                "history_valid": np.ascontiguousarray(valid, dtype=bool),
            },
        )
        return UserBatch(emb, mask, imp)


def _sidecar(folder: Path) -> dict[str, Any]:
    """The export's ``onnx.json``, its content checked against its ``checksum``."""
    path = folder / SIDECAR
    if not path.is_file():
        raise RunIntegrityError(path, "missing: not a folder written by `multiembed export-onnx`")
    try:
        body = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunIntegrityError(path, f"not valid JSON, truncated or corrupt ({err})") from err
    recorded = body.pop("checksum", None) if isinstance(body, dict) else None
    if not isinstance(recorded, str):
        raise RunIntegrityError(path, "has no checksum (an older version's export: export again)")
    if content_checksum(body) != recorded:
        raise RunIntegrityError(path, "checksum mismatch (edited or corrupt)")
    return body


def _session(model: bytes, threads: int) -> Any:
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError as err:
        raise ConfigError(
            ["--user-tower: needs the optional package onnxruntime: pip install 'multiembed[onnx]'"]
        ) from err
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: graph rewrites are not the user's concern
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
