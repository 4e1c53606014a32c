"""`examples/onnx_embed_user.py` embeds a new user from the CLI's export with onnxruntime only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.train.train_helpers import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onnx_embed_user.py"


def test_export_onnx_cli_then_the_example_without_torch(dcm_run, tmp_path):
    out = tmp_path / "onnx"
    result = run_cli("export-onnx", str(dcm_run), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "onnxruntime matches PyTorch" in result.stdout
    sidecar = json.loads((out / "onnx.json").read_text())

    code = (
        "import runpy, sys\n"
        f"sys.argv = ['onnx_embed_user.py', {str(out)!r}]\n"
        f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n"
        "heavy = sorted(m for m in ('torch', 'multiembed', 'pyarrow') if m in sys.modules)\n"
        "print('loaded:', heavy)\n"
    )
    example = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert example.returncode == 0, example.stderr
    assert example.stdout.strip().endswith("loaded: []")
    assert example.stdout.startswith(f"{sidecar['model_version']}: 8 known items of 9")
    assert example.stdout.count("top 5 items") >= 1
