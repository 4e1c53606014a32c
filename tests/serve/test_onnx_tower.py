"""`build_bundle(user_tower=...)`: request histories embedded by the run's ONNX graph."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from multiembed._files import content_checksum
from multiembed.errors import ConfigError
from multiembed.onnx import SIDECAR_FILE, USER_FILE, export_onnx
from multiembed.runs import RunIntegrityError
from multiembed.serve import OnnxUserTower, RetrieveRequest, ServingBundle, build_bundle, retrieve


@pytest.fixture(scope="module")
def exported(served_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    run, _ = served_run
    out = tmp_path_factory.mktemp("served_onnx") / "onnx"
    export_onnx(run, out)
    return out


@pytest.fixture(scope="module")
def onnx_bundle(served_run: tuple[Path, Path], exported: Path) -> ServingBundle:
    run, data = served_run
    return build_bundle(run, data, "HNSW32", user_tower=exported)


def _histories(bundle: ServingBundle) -> tuple[np.ndarray, np.ndarray]:
    h = bundle.histories
    assert h is not None
    rows = np.arange(0, h.n_users, max(1, h.n_users // 40))
    valid = h.history_valid[rows].copy()
    valid[::3, -4:] = False  # some invalid items, as a request may send
    return h.history[rows], valid


def test_the_graph_gives_the_torch_towers_queries(onnx_bundle: ServingBundle) -> None:
    tower = onnx_bundle.user_tower
    assert tower is not None
    history, valid = _histories(onnx_bundle)
    got = tower(history, valid)
    with torch.inference_mode():
        want = onnx_bundle.model.embed_users(torch.as_tensor(history), torch.as_tensor(valid))
    np.testing.assert_array_equal(got.slot_mask, want.slot_mask.numpy())
    np.testing.assert_allclose(got.embeddings, want.embeddings.numpy(), atol=1e-5)
    np.testing.assert_allclose(got.importance, want.importance.numpy(), atol=1e-5)
    assert got.embeddings.shape[1:] == (tower.k, tower.dim)


def test_a_body_history_runs_the_graph_not_torch(
    onnx_bundle: ServingBundle, bundle: ServingBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = tuple(onnx_bundle.vocab.items.raw.to_pylist()[:12])
    request = RetrieveRequest(history=items, budget=60)
    want = retrieve(bundle, request)  # PyTorch's tower

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the PyTorch tower ran")

    monkeypatch.setattr(onnx_bundle.model, "embed_users", refused)
    got = retrieve(onnx_bundle, request)
    assert got.item_ids == want.item_ids
    np.testing.assert_allclose(
        got.retrieval.candidates.scores, want.retrieval.candidates.scores, atol=1e-4
    )
    with pytest.raises(AssertionError, match="PyTorch tower ran"):
        retrieve(replace(onnx_bundle, user_tower=None), request)


def test_an_edited_graph_or_sidecar_is_refused(exported: Path, tmp_path: Path) -> None:
    graph = tmp_path / "graph"
    shutil.copytree(exported, graph)
    data = bytearray((graph / USER_FILE).read_bytes())
    data[len(data) // 2] ^= 1
    (graph / USER_FILE).write_bytes(bytes(data))
    with pytest.raises(RunIntegrityError, match=r"user_tower\.onnx: checksum mismatch"):
        OnnxUserTower(graph)

    sidecar = tmp_path / "sidecar"
    shutil.copytree(exported, sidecar)
    spec = json.loads((sidecar / SIDECAR_FILE).read_text())
    spec["k"] += 1
    (sidecar / SIDECAR_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    with pytest.raises(RunIntegrityError, match=r"onnx\.json: checksum mismatch"):
        OnnxUserTower(sidecar)

    with pytest.raises(RunIntegrityError, match="missing: not a folder written by"):
        OnnxUserTower(tmp_path / "nowhere")


def test_another_runs_export_is_refused(exported: Path) -> None:
    tower = OnnxUserTower(exported)
    with pytest.raises(ConfigError, match=r"model_version = .* the run has 'other'"):
        OnnxUserTower(exported, model_version="other")
    with pytest.raises(
        ConfigError, match=rf"k = {tower.k} in onnx\.json, the run has {tower.k + 1}"
    ):
        OnnxUserTower(exported, k=tower.k + 1)
    OnnxUserTower(exported, model_version=tower.model_version, k=tower.k, dim=tower.dim)


def test_the_bundle_refuses_an_export_of_another_model_version(
    served_run: tuple[Path, Path], exported: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(exported, other)
    spec = json.loads((other / SIDECAR_FILE).read_text())
    del spec["checksum"]
    spec["model_version"] = "a-retrained-model"
    spec["checksum"] = content_checksum(spec)  # intact, but another run's
    (other / SIDECAR_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    run, data = served_run
    with pytest.raises(ConfigError, match=r"model_version = 'a-retrained-model' in onnx\.json"):
        build_bundle(run, data, "HNSW32", user_tower=other)


@pytest.fixture
def served_by_cli(monkeypatch: pytest.MonkeyPatch) -> list[ServingBundle]:
    """The bundles `multiembed serve` would serve (uvicorn not started)."""
    from multiembed.cli import serve_cmd

    monkeypatch.setenv(serve_cmd._REEXEC, "1")  # pytest has loaded NumPy: no re-exec
    monkeypatch.delenv(serve_cmd.TOKEN_ENV, raising=False)
    seen: list[ServingBundle] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: None)
    monkeypatch.setattr(
        "multiembed.serve.create_app", lambda *a, initial, **kw: seen.append(initial)
    )
    return seen


def _serve(served_run: tuple[Path, Path], *args: str) -> Any:
    from typer.testing import CliRunner

    from multiembed.cli.main import app

    run, data = served_run
    return CliRunner().invoke(app, ["serve", str(run), "--data", str(data), *args])


def test_serve_embeds_request_histories_with_onnxruntime_by_default(
    served_run: tuple[Path, Path], exported: Path, served_by_cli: list[ServingBundle]
) -> None:
    result = _serve(served_run)
    assert result.exit_code == 0, result.output
    assert "request histories embedded by onnxruntime" in result.output
    result = _serve(served_run, "--tower", "torch")
    assert "request histories embedded by PyTorch" in result.output
    result = _serve(served_run, "--user-tower", str(exported))
    assert result.exit_code == 0, result.output
    default, torch_only, given = served_by_cli
    assert default.user_tower is not None
    assert default.user_tower.model_version == default.model_version
    assert torch_only.user_tower is None
    assert given.user_tower is not None
    assert given.user_tower.directory == exported


def test_serve_falls_back_to_pytorch_unless_onnx_is_required(
    served_run: tuple[Path, Path],
    served_by_cli: list[ServingBundle],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from multiembed.onnx import OnnxExportError

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OnnxExportError("model dcm cannot be exported to ONNX: a reason")

    monkeypatch.setattr("multiembed.onnx.export_model", refused)
    result = _serve(served_run)
    assert result.exit_code == 0, result.output
    assert "request histories: embedded by PyTorch (model dcm cannot be exported" in result.output
    assert [b.user_tower for b in served_by_cli] == [None]
    result = _serve(served_run, "--tower", "onnx")
    assert result.exit_code == 2
    assert "model dcm cannot be exported to ONNX: a reason" in result.output
    result = _serve(served_run, "--user-tower", str(tmp_path / "none"))
    assert result.exit_code == 2
    assert "onnx.json: missing: not a folder written by `multiembed export-onnx`" in result.output
    assert "Traceback" not in result.output


def test_the_user_tower_alone_is_enough_to_serve(bundle: ServingBundle, tmp_path: Path) -> None:
    from multiembed.onnx import ITEM_FILE, export_model
    from multiembed.serve import with_user_tower

    spec = export_model(
        bundle.model,
        tmp_path,
        name="dcm",
        seq_len=bundle.seq_len,
        n_items=bundle.n_items,
        model_version=bundle.model_version,
        item_tower=False,
    )
    assert "item_tower" not in spec
    assert "item_tower" not in spec["parity"]
    assert not (tmp_path / ITEM_FILE).exists()
    served = with_user_tower(bundle, tmp_path)
    assert served.user_tower is not None
    assert served.user_tower.model_version == bundle.model_version
    history, valid = _histories(bundle)
    got = served.user_tower(history, valid)
    with torch.inference_mode():
        want = bundle.model.embed_users(torch.as_tensor(history), torch.as_tensor(valid))
    np.testing.assert_allclose(got.embeddings, want.embeddings.numpy(), atol=1e-5)
