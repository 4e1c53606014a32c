"""Tracing a run's towers into ONNX files, the vocabulary and the sidecar (see the package)."""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import multiembed
from multiembed._files import atomic_write_bytes, content_checksum, sha256_file
from multiembed.data.schema import VOCAB_DIR
from multiembed.data.vocab import Vocab
from multiembed.onnx.errors import OnnxExportError
from multiembed.runs import LoadedRun, UserItemModel, load_run, model_label

OPSET = 18
"""ONNX opset of both graphs (18: ``ScatterElements`` with a min reduction)."""
PARITY_TOLERANCE = 1e-5
"""Largest absolute difference from PyTorch that the export accepts, on any output."""
USER_FILE, ITEM_FILE = "user_tower.onnx", "item_tower.onnx"
VOCAB_FILE, SIDECAR_FILE = "item_ids.json", "onnx.json"
USER_INPUTS, USER_OUTPUTS = ("history", "history_valid"), ("embeddings", "slot_mask", "importance")
ITEM_OUTPUTS = ("embeddings",)
INSTALL_HINT = "pip install 'multiembed[onnx]' (the packages onnx and onnxruntime)"


def _graph_tools() -> ModuleType:
    """The onnx side of the export, or `OnnxExportError` saying how to install it."""
    try:
        return importlib.import_module("multiembed.onnx._graph")
    except ImportError as err:
        raise OnnxExportError(
            f"ONNX export needs the optional package {err.name or 'onnx'}: {INSTALL_HINT}"
        ) from err


class _Tower(nn.Module):
    """One tower of `model` to trace: ``history [B, L], history_valid [B, L]`` ->
    embeddings, slot_mask, importance (`user`), or ``item_ids [N]`` -> ``[N, D]``."""

    def __init__(self, model: UserItemModel, *, user: bool) -> None:
        super().__init__()
        self.model, self.user = model, user

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        if not self.user:
            return self.model.embed_items(*inputs)
        out = self.model.embed_users(*inputs)
        return out.embeddings, out.slot_mask, out.importance


def export_onnx(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Write a run's user and item towers as ONNX graphs, with the vocabulary and a sidecar.

    Args:
        run_dir: a run directory written by `multiembed.train.train` (verified on load).
        out_dir: where the files go (created if needed); see the module docstring.

    Returns:
        The sidecar written to ``onnx.json``.

    Raises:
        OnnxExportError: onnx or onnxruntime missing, a model that cannot be exported,
            or graphs that do not reproduce PyTorch's output.
        RunIntegrityError: a damaged run directory.

    Example:
        >>> export_onnx("runs/dcm", "onnx/")  # doctest: +SKIP
    """
    _graph_tools()  # onnx and onnxruntime first: an install hint before any work
    run = load_run(Path(run_dir))
    name = model_label(run.config)
    model = _exportable(run, name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_vocabulary(run, out / VOCAB_FILE, run.features.n_items)
    return export_model(
        model,
        out,
        name=name,
        seq_len=run.config.examples.seq_len,
        n_items=run.features.n_items,
        model_version=run.model_version,
        vocabulary=VOCAB_FILE,
    )


def export_model(
    model: UserItemModel,
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    seq_len: int,
    n_items: int,
    model_version: str,
    vocabulary: str | None = None,
    item_tower: bool = True,
) -> dict[str, Any]:
    """`export_onnx` of a model in memory: its two graphs, parity-checked, and the sidecar.

    For a model that is not (yet) a run directory, e.g. a benchmark's; `export_onnx`
    calls it for a run. `vocabulary` names the item vocabulary file the caller wrote
    beside the graphs (None: the sidecar names none). ``item_tower=False`` exports the
    user tower alone (what a service embedding request histories needs: the item
    tower's graph holds the same item-feature constants and takes as long to trace).

    Raises:
        OnnxExportError: as `export_onnx`.
    """
    graph = _graph_tools()
    if getattr(getattr(model, "user_tower", None), "n_followed_topics", 0):
        raise OnnxExportError(
            f"model {name} cannot be exported to ONNX: its user tower reads followed topics "
            "(model.followed_topics = true), which the exported graph has no input for"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.train(False)  # eval mode: no Gumbel noise, no random first seed
    user_args = dict(zip(USER_INPUTS, probe_histories(n_items, seq_len, seed=0), strict=True))
    _export(graph, name, _Tower(model, user=True), user_args, out / USER_FILE, USER_OUTPUTS)
    # another batch size and other histories than the traced ones
    user_args = dict(
        zip(USER_INPUTS, probe_histories(n_items, seq_len, seed=1, rows=7), strict=True)
    )
    with torch.no_grad():
        user = model.embed_users(*user_args.values())
    parity = {
        "user_tower": graph.check_parity(name, out / USER_FILE, user_args, user, PARITY_TOLERANCE)
    }
    towers = [("user_tower", USER_FILE)]
    if item_tower:
        item_args = {"item_ids": torch.tensor([0, 0, *range(min(n_items, 8))])}  # a repeat
        _export(graph, name, _Tower(model, user=False), item_args, out / ITEM_FILE, ITEM_OUTPUTS)
        item_args = {"item_ids": torch.arange(min(n_items, 1024))}
        with torch.no_grad():
            items = model.embed_items(item_args["item_ids"])
        parity["item_tower"] = graph.check_parity(
            name, out / ITEM_FILE, item_args, (items,), PARITY_TOLERANCE
        )
        towers.append(("item_tower", ITEM_FILE))
    parity["tolerance"] = PARITY_TOLERANCE

    _, k, dim = user.embeddings.shape
    sidecar = _sidecar(model_version, name, k=k, dim=dim, seq_len=seq_len, n_items=n_items)
    if vocabulary is not None:
        sidecar["item_vocabulary"] = {
            "file": vocabulary,
            "doc": "raw_ids[i] is the raw item id of index i; valid[i] whether item i is "
            "valid; a raw id not listed is unknown to the model: leave it out of the history",
        }
    if not item_tower:
        del sidecar["item_tower"]
    sidecar["parity"] = parity
    for tower, file in towers:
        sidecar[tower]["sha256"] = sha256_file(out / file)  # what a loader checks the graph by
    # in the documented key order (inputs and outputs in graph order), checksummed by content
    body = {**sidecar, "checksum": content_checksum(sidecar)}
    atomic_write_bytes(out / SIDECAR_FILE, (json.dumps(body, indent=2) + "\n").encode())
    return sidecar


def probe_histories(
    n_items: int, seq_len: int, *, seed: int, rows: int = 5
) -> tuple[Tensor, Tensor]:
    """A batch of ``rows >= 5`` histories ``[rows, L]`` (and validity) covering the cases a
    traced graph must handle: a full history with a repeated item, a short one, an empty
    one, a single item, then random lengths; some items invalid.

    >>> h, v = probe_histories(10, 4, seed=0)
    >>> h.shape, (h[2] == -1).all().item(), bool(((h >= 0) | ~v).all())
    (torch.Size([5, 4]), True, True)
    """
    rng = np.random.default_rng(seed)
    lengths = [seq_len, min(2, seq_len), 0, 1, *rng.integers(0, seq_len + 1, max(rows - 4, 1))]
    history = np.full((len(lengths), seq_len), -1, dtype=np.int64)  # [B, L], -1 pads
    for row, length in enumerate(lengths):
        if length:
            history[row, -length:] = rng.integers(0, n_items, length)
    if seq_len >= 2:
        history[0, 0] = history[0, -1]  # a repeated item
    valid = (history >= 0) & (rng.random(history.shape) > 0.2)  # [B, L]
    valid[:, -1] = history[:, -1] >= 0  # the most recent item of each row is valid
    return torch.from_numpy(history), torch.from_numpy(valid)


def _exportable(run: LoadedRun, name: str) -> UserItemModel:
    """The run's model, or `OnnxExportError` saying why it cannot be exported."""
    if run.config.model.kind == "explicit" or not isinstance(run.model, UserItemModel):
        raise OnnxExportError(
            f"model {name} cannot be exported to ONNX: it is a Conditional Retrieval "
            "(explicit) model, whose user embedding is conditioned on a topic; the ONNX "
            "export covers implicit-interest models (single, mind, dcm, self_attention, "
            "interest_token)"
        )
    if run.config.model.followed_topics:
        raise OnnxExportError(
            f"model {name} cannot be exported to ONNX: its user tower reads followed topics "
            "(model.followed_topics = true), which the exported graph has no input for"
        )
    return run.model


def _export(
    graph: ModuleType,
    name: str,
    module: nn.Module,
    args: dict[str, Tensor],
    path: Path,
    outputs: tuple[str, ...],
) -> None:
    """Trace `module` on `args` into `path` (batch axis dynamic), then make the graph portable."""
    batch = {0: "B" if len(args) > 1 else "N"}
    module.train(False)  # the exporter restores this mode, recursively, when it is done
    with torch.no_grad():
        result = module(*args.values())
    results = result if isinstance(result, tuple) else (result,)
    try:
        with warnings.catch_warnings(), _traceable(module), _quiet_stdout():
            # the tracer warns of every Python-level input check it leaves out of the
            # graph: those checks guard the library's callers; the sidecar states the
            # graph's input contract instead
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(args.values()),
                str(path),
                input_names=list(args),
                output_names=list(outputs),
                dynamic_axes={n: batch for n in (*args, *outputs)},
                opset_version=OPSET,
                training=torch.onnx.TrainingMode.EVAL,
                dynamo=False,
            )
    except RuntimeError as err:  # torch.onnx's errors (OnnxExporterError) are RuntimeErrors
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        reason = reason.split(" Please feel free")[0]  # the exporter's invitation to report
        raise OnnxExportError(
            f"model {name} cannot be exported to ONNX: the exporter does not support an "
            f"operation of its {path.stem.replace('_', ' ')} ({reason[:300]})"
        ) from err
    graph.make_portable(path, args, dict(zip(outputs, results, strict=True)))


@contextmanager
def _traceable(module: nn.Module) -> Iterator[None]:
    """Gradients on for the trace, as in training: with them off, PyTorch's transformer
    layers take a fused kernel (``_transformer_encoder_layer_fwd``) that ONNX lacks.
    Each parameter's ``requires_grad`` is restored after."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Discard what is written to file descriptor 1: on an unsupported operation the
    exporter's C++ side prints the whole graph there, hundreds of lines."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _write_vocabulary(run: LoadedRun, path: Path, n_items: int) -> None:
    vocab = Vocab.load(run.run_dir / VOCAB_DIR / "items.parquet")
    valid = run.features.present_mask().cpu().numpy()
    body = {
        "raw_ids": vocab.raw.slice(0, n_items).to_pylist(),
        "valid": valid.tolist(),
    }
    atomic_write_bytes(path, json.dumps(body, separators=(",", ":")).encode())


def _sidecar(
    model_version: str, name: str, *, k: int, dim: int, seq_len: int, n_items: int
) -> dict[str, Any]:
    def tensor(dtype: str, shape: list[int | str], doc: str) -> dict[str, Any]:
        return {"dtype": dtype, "shape": shape, "doc": doc}

    return {
        "model": name,
        "model_version": model_version,
        "multiembed_version": multiembed.__version__,
        "opset": OPSET,
        "k": k,
        "dim": dim,
        "seq_len": seq_len,
        "n_items": n_items,
        "metric": "inner_product",
        "user_tower": {
            "file": USER_FILE,
            "inputs": {
                "history": tensor(
                    "int64",
                    ["B", seq_len],
                    "item indices (item_ids.json), oldest first, right-aligned, -1 pads",
                ),
                "history_valid": tensor(
                    "bool", ["B", seq_len], "item valid (item_ids.json) and a positive action"
                ),
            },
            "outputs": {
                "embeddings": tensor("float32", ["B", k, dim], "unit norm; zero at unused slots"),
                "slot_mask": tensor("bool", ["B", k], "False: an unused slot, skip it"),
                "importance": tensor("float32", ["B", k], "budget share of each slot"),
            },
        },
        "item_tower": {
            "file": ITEM_FILE,
            "inputs": {"item_ids": tensor("int64", ["N"], "item indices (item_ids.json)")},
            "outputs": {"embeddings": tensor("float32", ["N", dim], "unit norm")},
        },
    }
