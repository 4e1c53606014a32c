"""`multiembed export-onnx`: a run's user and item towers as ONNX graphs for onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import console


@friendly_errors
def export_onnx_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by `multiembed train`.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", file_okay=False, help="Directory for the ONNX files, vocabulary and sidecar."
        ),
    ],
) -> None:
    """Export the user and item towers as ONNX (needs `pip install 'multiembed[onnx]'`).

    Writes user_tower.onnx (history [B, L] int64, -1 pads; history_valid [B, L] bool ->
    embeddings [B, K, D], slot_mask [B, K], importance [B, K]), item_tower.onnx
    (item_ids [N] -> [N, D]), item_ids.json (raw id of each index) and onnx.json
    (names, shapes, K, D, L, opset, model version). Both graphs are checked against
    PyTorch before the command succeeds.
    """
    from multiembed.onnx import ITEM_FILE, SIDECAR_FILE, USER_FILE, VOCAB_FILE, export_onnx

    sidecar = export_onnx(run, out)
    console.print(
        f"{sidecar['model_version']}: K = {sidecar['k']}, D = {sidecar['dim']}, "
        f"L = {sidecar['seq_len']}, {sidecar['n_items']:,} items, opset {sidecar['opset']}"
    )
    parity = sidecar["parity"]
    console.print(
        f"onnxruntime matches PyTorch: max abs diff {parity['user_tower']:.1e} (user), "
        f"{parity['item_tower']:.1e} (item), tolerance {parity['tolerance']:.0e}"
    )
    for name in (USER_FILE, ITEM_FILE, VOCAB_FILE, SIDECAR_FILE):
        console.print(f"  {out / name}")
