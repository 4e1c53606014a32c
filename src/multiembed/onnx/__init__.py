"""ONNX export of a trained run's towers: embed new users without this package or PyTorch.

`export_onnx(run_dir, out_dir)` writes, into ``out_dir``::

    user_tower.onnx  history [B, L] int64 item indices, oldest first, -1 pads;
                     history_valid [B, L] bool (item valid, Eq. 6, with a positive action)
                     -> embeddings [B, K, D] float32 (unit norm; zero at unused slots),
                        slot_mask [B, K] bool (False: skip the slot when searching),
                        importance [B, K] float32 (share of the search budget, Section 3.5)
    item_tower.onnx  item_ids [N] int64 item indices -> embeddings [N, D] float32 (unit norm)
    item_ids.json    the item vocabulary: ``raw_ids[i]`` is the raw id of index ``i``,
                     ``valid[i]`` whether item ``i`` is valid (has its pretrained vector)
    onnx.json        the contract: file names, input and output names, dtypes and shapes,
                     K, D, L, the opset, the model version, the vocabulary file, each
                     graph's ``sha256``, ``parity``: the largest difference from PyTorch
                     the check measured, and ``checksum``: the SHA-256 of the rest
                     (`multiembed serve --user-tower` refuses a file that fails either)

``B`` and ``N`` are dynamic; ``L`` is the run's ``examples.seq_len``. A history
with fewer items is right-aligned (most recent item last) and padded with
``-1`` on the left, as in training. The graphs are the eval-mode forward passes:
no Gumbel noise and no random first seed (DCM starts from the most recent valid
item), so one history always gets the same embeddings. The item features
(pretrained vectors, categorical codes, topics) are constants inside both graphs.

Before it returns, the export runs both graphs with onnxruntime on a batch with
padding, short histories and an empty history, and refuses (`OnnxExportError`)
when they differ from PyTorch by more than `PARITY_TOLERANCE`.

Implicit-interest models export (single, mind, dcm, self_attention,
interest_token); a Conditional Retrieval (explicit) model, a tower that reads
followed topics, or a model using an operation the exporter lacks (pfs: a
stable sort) is refused with the model's name and the reason. The export
traces the model (``torch.onnx.export(dynamo=False)``): the dynamo exporter
stops at the towers' data-dependent shapes (distinct items, used slots).
`export_model(model, out_dir, ...)` does the same for a model in memory (a
benchmark's), without the vocabulary file. `multiembed serve RUN --user-tower OUT`
embeds request histories with the exported user tower
(`multiembed.serve.OnnxUserTower`).

Needs the optional packages ``onnx`` and ``onnxruntime``
(``pip install 'multiembed[onnx]'``).
"""

from multiembed.onnx._export import (
    ITEM_FILE,
    OPSET,
    PARITY_TOLERANCE,
    SIDECAR_FILE,
    USER_FILE,
    VOCAB_FILE,
    export_model,
    export_onnx,
)
from multiembed.onnx.errors import OnnxExportError

__all__ = [
    "ITEM_FILE",
    "OPSET",
    "PARITY_TOLERANCE",
    "SIDECAR_FILE",
    "USER_FILE",
    "VOCAB_FILE",
    "OnnxExportError",
    "export_model",
    "export_onnx",
]
