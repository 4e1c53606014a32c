"""What cannot be exported is refused with the model's name and the reason; exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import multiembed.onnx
from multiembed.onnx import OnnxExportError, export_onnx
from multiembed.train import load_run
from tests.onnx_export.conftest import trained
from tests.train.train_helpers import run_cli


@pytest.fixture(scope="module")
def cr_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("onnx_cr") / "run"
    return trained(tiny_data, run, {"kind": "explicit", "condition": "source"}, steps=1)


def test_conditional_retrieval_is_refused_with_the_model_and_the_reason(cr_run, tmp_path):
    with pytest.raises(OnnxExportError, match=r"model cr_source cannot be exported") as err:
        export_onnx(cr_run, tmp_path / "onnx")
    assert "Conditional Retrieval" in str(err.value)
    assert not (tmp_path / "onnx" / "user_tower.onnx").exists()


def test_an_operation_the_exporter_lacks_is_named(tiny_data, tmp_path, capfd):
    run = trained(tiny_data, tmp_path / "run", {"name": "pfs"}, steps=1)
    capfd.readouterr()
    with pytest.raises(OnnxExportError, match=r"model pfs cannot be exported to ONNX: .*Sort"):
        export_onnx(run, tmp_path / "onnx")
    assert len(capfd.readouterr().out) < 200  # not the exporter's dump of the whole graph


def test_a_graph_that_differs_from_pytorch_is_refused(dcm_run, tmp_path):
    from multiembed.onnx import _graph  # the check the export runs before it returns

    export_onnx(dcm_run, tmp_path)
    history = torch.tensor([[-1, 3, 4, 5] * 3, [-1] * 12])  # [B=2, L=12]
    inputs = {"history": history, "history_valid": history >= 0}
    with torch.no_grad():
        user = load_run(dcm_run).model.embed_users(*inputs.values())
    path = tmp_path / "user_tower.onnx"
    assert _graph.check_parity("dcm", path, inputs, user, 1e-5) < 1e-5
    shifted = user._replace(embeddings=user.embeddings + 1e-4)
    with pytest.raises(OnnxExportError, match=r"model dcm: .* differs from PyTorch by 1\.0\de-04"):
        _graph.check_parity("dcm", path, inputs, shifted, 1e-5)
    flipped = user._replace(slot_mask=~user.slot_mask)
    with pytest.raises(OnnxExportError, match=r"differs from PyTorch in output 1 \(a boolean"):
        _graph.check_parity("dcm", path, inputs, flipped, 1e-5)


def test_the_cli_exits_2_with_the_reason_and_no_traceback(cr_run, tmp_path):
    result = run_cli("export-onnx", str(cr_run), "--out", str(tmp_path / "onnx"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "error: model cr_source cannot be exported to ONNX" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_onnxruntime_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "multiembed.onnx._graph", raising=False)
    with pytest.raises(OnnxExportError, match=r"onnxruntime: pip install 'multiembed\[onnx\]'"):
        export_onnx(tmp_path / "no-run", tmp_path / "onnx")
    assert multiembed.onnx.export_onnx is export_onnx  # the package itself imported fine


def test_the_library_and_the_cli_import_without_onnx(dcm_run, tmp_path):
    code = (
        "import sys\n"
        "sys.modules['onnx'] = sys.modules['onnxruntime'] = None\n"
        "import multiembed, multiembed.onnx\n"
        "from multiembed.cli.main import main\n"
        f"sys.argv = ['multiembed', 'export-onnx', {str(dcm_run)!r}, '--out', {str(tmp_path)!r}]\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'multiembed[onnx]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_reading_followed_topics_is_refused_in_memory_too(tiny_data, tmp_path):
    run = trained(tiny_data, tmp_path / "run", {"followed_topics": True}, steps=1)
    model = load_run(run).model
    with pytest.raises(OnnxExportError, match=r"model m cannot be exported .*followed topics"):
        multiembed.onnx.export_model(
            model, tmp_path / "onnx", name="m", seq_len=12, n_items=9, model_version="v"
        )
    assert not (tmp_path / "onnx").exists()
