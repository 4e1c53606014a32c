"""The onnx and onnxruntime side of the export: portable graphs and the parity check.

Imported only when an export runs, so that the library imports without the
optional packages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from torch import Tensor

from multiembed.onnx.errors import OnnxExportError

_DTYPES = {
    torch.int64: TensorProto.INT64,
    torch.bool: TensorProto.BOOL,
    torch.float32: TensorProto.FLOAT,
}


def make_portable(path: Path, inputs: Mapping[str, Tensor], outputs: Mapping[str, Tensor]) -> None:
    """Rewrite the exported graph at `path` so that any onnxruntime runs it as documented.

    - The inputs and outputs are declared as `inputs` and `outputs` (the traced
      example's), with a dynamic first axis: every declared input stays, in order,
      even where the model ignores it (the single-embedding model never reads
      ``history_valid``, and the exporter drops unread inputs, which would change the
      graph's signature from model to model).
    - ``Where`` over booleans (farthest point seeding picks its pool with one) becomes
      ``Or(And(c, x), And(Not(c), y))``: onnxruntime has no boolean ``Where`` kernel.
    """
    model = onnx.load(str(path))
    graph = model.graph
    axis0 = graph.input[0].type.tensor_type.shape.dim[0].dim_param or "B"
    for declared, tensors in ((graph.input, inputs), (graph.output, outputs)):
        del declared[:]
        declared.extend(
            helper.make_tensor_value_info(
                name, _DTYPES[t.dtype], [axis0, *(int(s) for s in t.shape[1:])]
            )
            for name, t in tensors.items()
        )
    _bool_where_as_logic(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _bool_where_as_logic(model: onnx.ModelProto) -> None:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    types |= {t.name: t.data_type for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "Where" or types.get(node.input[1]) != TensorProto.BOOL:
            nodes.append(node)
            continue
        c, x, y = node.input
        p = f"{node.name or node.output[0]}/logic"
        nodes += [
            helper.make_node("And", [c, x], [f"{p}/kept"], name=f"{p}/and_kept"),
            helper.make_node("Not", [c], [f"{p}/not_c"], name=f"{p}/not"),
            helper.make_node("And", [f"{p}/not_c", y], [f"{p}/other"], name=f"{p}/and_other"),
            helper.make_node("Or", [f"{p}/kept", f"{p}/other"], list(node.output), name=p),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def check_parity(
    name: str,
    path: Path,
    inputs: Mapping[str, Tensor],
    expected: Sequence[Tensor],
    tolerance: float,
) -> float:
    """Largest absolute difference of the graph's outputs from PyTorch's `expected`.

    Raises:
        OnnxExportError: onnxruntime cannot load or run the graph, a boolean output
            differs, or a float output differs by more than `tolerance`.
    """
    try:  # onnxruntime on CPU; the outputs in graph order
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its graph rewrites are not the user's
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        got = session.run(None, {name: t.cpu().numpy() for name, t in inputs.items()})
    except Exception as err:  # onnxruntime's errors share no base class but Exception
        raise OnnxExportError(
            f"model {name}: onnxruntime cannot run the exported {path.name} ({err})"
        ) from err
    worst = 0.0
    for output, (want, have) in enumerate(zip(expected, got, strict=True)):
        want_np = want.detach().cpu().numpy()
        if want_np.dtype == bool:
            if not np.array_equal(want_np, have):
                raise OnnxExportError(
                    f"model {name}: the exported {path.name} differs from PyTorch in output "
                    f"{output} (a boolean mask)"
                )
            continue
        diff = float(np.max(np.abs(want_np - have))) if want_np.size else 0.0
        if not diff <= tolerance:
            raise OnnxExportError(
                f"model {name}: the exported {path.name} differs from PyTorch by {diff:.2e} "
                f"in output {output} (tolerance {tolerance:.0e})"
            )
        worst = max(worst, diff)
    return worst
