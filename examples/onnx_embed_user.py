"""Embed a new user with onnxruntime only: no PyTorch, no multiembed in this process.

Run it with the directory that `multiembed export-onnx RUN --out DIR` wrote:

    python examples/onnx_embed_user.py DIR

or with no argument: it then builds a tiny one first (a small synthetic world,
a few training steps, the export), through the `multiembed` command line in
child processes, in about half a minute, and uses that.

What it shows, with numpy and onnxruntime alone:

1. raw item ids -> the model's indices, through ``item_ids.json`` (an unknown
   raw id is left out of the history, never guessed);
2. the history right-aligned in ``[1, L]`` with ``-1`` padding, and
   ``history_valid`` from the vocabulary's ``valid`` flags;
3. ``user_tower.onnx`` -> K embeddings, the slot mask and each slot's importance;
4. ``item_tower.onnx`` over every item, and the top 5 items of each used slot by
   inner product (what an index would return).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

TINY_CONFIG = """
[synthetic]
n_users = 100
n_items = 600
n_topics = 6
subtopics_per_topic = 2

[examples]
seq_len = 12

[model]
name = "dcm"
k = 3
dim = 16
id_dim = 8
hidden_dim = 16

[train]
batch_size = 64
epochs = 1
threads = 1
"""


def build_tiny_export(work: Path) -> Path:
    """Prepare a tiny synthetic world, train a few steps and export it; returns the ONNX dir."""
    config = work / "tiny.toml"
    config.write_text(TINY_CONFIG)
    steps = [
        ["prepare", "--dataset", "synthetic", "--out", str(work / "data"), "--config", str(config)],
        ["train", "--data", str(work / "data"), "--out", str(work / "run"), "--config",
         str(config), "--max-steps", "5", "--no-progress"],
        ["export-onnx", str(work / "run"), "--out", str(work / "onnx")],
    ]  # fmt: skip
    for args in steps:
        # the commands' own reports are left out: the embedding is what this shows
        subprocess.run(
            [sys.executable, "-m", "multiembed", *args], check=True, stdout=subprocess.DEVNULL
        )
    return work / "onnx"


def history_inputs(raw_ids: list, vocab: dict, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw item ids, oldest first -> ``history [1, L]`` int64 (-1 pads) and ``history_valid``."""
    index = {raw: i for i, raw in enumerate(vocab["raw_ids"])}
    known = [index[raw] for raw in raw_ids if raw in index][-seq_len:]  # the most recent L
    history = np.full((1, seq_len), -1, dtype=np.int64)  # [B=1, L], right-aligned
    if known:
        history[0, -len(known) :] = known
    valid = np.asarray(vocab["valid"], dtype=bool)
    history_valid = (history >= 0) & valid[np.maximum(history, 0)]  # [1, L]
    return history, history_valid


def main(onnx_dir: Path) -> None:
    sidecar = json.loads((onnx_dir / "onnx.json").read_text())
    vocab = json.loads((onnx_dir / sidecar["item_vocabulary"]["file"]).read_text())
    user_tower = ort.InferenceSession(str(onnx_dir / sidecar["user_tower"]["file"]))
    item_tower = ort.InferenceSession(str(onnx_dir / sidecar["item_tower"]["file"]))

    # A new user: a few raw item ids from the catalogue, oldest first, and one the
    # model never saw (left out).
    raw_ids = [*vocab["raw_ids"][10:60:7], "not-an-item"]
    history, history_valid = history_inputs(raw_ids, vocab, sidecar["seq_len"])
    embeddings, slot_mask, importance = user_tower.run(
        None, {"history": history, "history_valid": history_valid}
    )  # [1, K, D], [1, K], [1, K]
    print(
        f"{sidecar['model_version']}: {int((history >= 0).sum())} known items of "
        f"{len(raw_ids)} -> {int(slot_mask.sum())} of {sidecar['k']} slots used"
    )

    (items,) = item_tower.run(None, {"item_ids": np.arange(sidecar["n_items"], dtype=np.int64)})
    for slot in np.flatnonzero(slot_mask[0]):
        scores = items @ embeddings[0, slot]  # [N] inner products (unit vectors: cosines)
        top = np.argsort(-scores)[:5]
        names = [vocab["raw_ids"][i] for i in top]
        print(f"  slot {slot}: importance {importance[0, slot]:.2f}, top 5 items {names}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(build_tiny_export(Path(tmp)))
