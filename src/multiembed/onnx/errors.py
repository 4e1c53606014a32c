"""The error of the ONNX export."""

from __future__ import annotations

from multiembed.errors import MultiembedError


class OnnxExportError(MultiembedError):
    """A run cannot be exported to ONNX, or onnx / onnxruntime are missing: the message
    names the model and the reason (or the command that installs the packages)."""
