"""The exported towers reproduce PyTorch's eval-mode output, for every supported model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from multiembed.data.schema import VOCAB_DIR
from multiembed.data.vocab import Vocab
from multiembed.eval import inference
from multiembed.onnx import (
    ITEM_FILE,
    OPSET,
    PARITY_TOLERANCE,
    SIDECAR_FILE,
    USER_FILE,
    VOCAB_FILE,
    export_onnx,
)
from multiembed.train import load_run
from tests.onnx_export.conftest import trained

SUPPORTED = ("single", "dcm", "mind", "self_attention", "interest_token")
L = 12  # tiny_config's examples.seq_len


@pytest.fixture(scope="module", params=SUPPORTED)
def exported(
    request: pytest.FixtureRequest,
    tiny_data: Path,
    dcm_run: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, Path, Path]:
    name = request.param
    root = tmp_path_factory.mktemp(f"onnx_{name}")
    run = dcm_run if name == "dcm" else trained(tiny_data, root / "run", {"name": name})
    export_onnx(run, root / "onnx")
    return name, run, root / "onnx"


def _batch(n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``[6, L]`` histories: full, full with repeats, short, one item, empty, full with
    invalid items; -1 pads on the left (6 rows: not the traced batch size)."""
    rng = np.random.default_rng(7)
    history = np.full((6, L), -1, dtype=np.int64)
    history[0] = rng.integers(0, n_items, L)
    history[1] = np.tile(rng.integers(0, n_items, 3), L // 3)
    history[2, -3:] = rng.integers(0, n_items, 3)
    history[3, -1] = rng.integers(0, n_items)
    history[5] = rng.integers(0, n_items, L)
    valid = history >= 0
    valid[5, ::2] = False
    return history, valid


def _torch(run: Path, history: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    model = load_run(run).model
    with inference(model):
        user = model.embed_users(torch.from_numpy(history), torch.from_numpy(valid))
    return [t.numpy() for t in user]


def test_user_tower_matches_pytorch_with_padding_short_and_empty_histories(exported):
    name, run, out = exported
    n_items = json.loads((out / SIDECAR_FILE).read_text())["n_items"]
    history, valid = _batch(n_items)
    session = ort.InferenceSession(str(out / USER_FILE))
    emb, mask, importance = session.run(None, {"history": history, "history_valid": valid})
    want_emb, want_mask, want_importance = _torch(run, history, valid)

    np.testing.assert_array_equal(mask, want_mask)
    assert mask[4].sum() >= 1, name  # the empty history still gets an embedding
    used = want_mask  # [B, K]
    assert np.abs(emb[used] - want_emb[used]).max() < 1e-5, name
    assert np.abs(importance - want_importance).max() < 1e-5, name
    assert np.allclose(np.linalg.norm(emb[used], axis=-1), 1.0, atol=1e-5)
    one = session.run(None, {"history": history[4:5], "history_valid": valid[4:5]})
    np.testing.assert_array_equal(one[0], emb[4:5])  # a batch of one, the empty history


def test_item_tower_matches_pytorch(exported):
    name, run, out = exported
    loaded = load_run(run)
    ids = np.arange(loaded.features.n_items, dtype=np.int64)
    (got,) = ort.InferenceSession(str(out / ITEM_FILE)).run(None, {"item_ids": ids})
    with inference(loaded.model):
        want = loaded.model.embed_items(torch.from_numpy(ids)).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-5, name


def test_graphs_hold_no_randomness_and_declare_the_documented_signature(exported):
    name, _, out = exported
    sidecar = json.loads((out / SIDECAR_FILE).read_text())
    for file, tower in ((USER_FILE, "user_tower"), (ITEM_FILE, "item_tower")):
        model = onnx.load(str(out / file))
        ops = {node.op_type for node in model.graph.node}
        assert not {op for op in ops if op.startswith(("Random", "Bernoulli", "Multinomial"))}
        assert model.opset_import[0].version == OPSET >= 17
        session = ort.InferenceSession(str(out / file))
        spec = sidecar[tower]
        assert [i.name for i in session.get_inputs()] == list(spec["inputs"]), name
        assert [o.name for o in session.get_outputs()] == list(spec["outputs"]), name
        for arg in (*session.get_inputs(), *session.get_outputs()):
            declared = {**spec["inputs"], **spec["outputs"]}[arg.name]
            assert arg.shape[1:] == declared["shape"][1:], (name, arg.name)
            assert isinstance(arg.shape[0], str), (name, arg.name)  # a dynamic batch axis
    k = 1 if name == "single" else 3
    assert (sidecar["k"], sidecar["dim"], sidecar["seq_len"]) == (k, 16, L)
    assert sidecar["user_tower"]["outputs"]["embeddings"]["shape"] == ["B", k, 16]


def test_sidecar_and_vocabulary_map_raw_ids_to_indices(exported):
    name, run, out = exported
    loaded = load_run(run)
    sidecar = json.loads((out / SIDECAR_FILE).read_text())
    assert sidecar["model_version"] == loaded.model_version
    assert sidecar["model"] == name
    assert sidecar["item_vocabulary"]["file"] == VOCAB_FILE
    vocab = json.loads((out / VOCAB_FILE).read_text())
    n = loaded.features.n_items
    raw = Vocab.load(run / VOCAB_DIR / "items.parquet").decode(np.arange(n)).to_pylist()
    assert vocab["raw_ids"] == raw
    present = loaded.features.vector_present
    assert vocab["valid"] == ([True] * n if present is None else present.tolist())
    assert sidecar["parity"]["user_tower"] < sidecar["parity"]["tolerance"] == 1e-5


def _ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_dcm_clustering_exports_without_scatters(dcm_run: Path, tmp_path: Path) -> None:
    """Seeds and single-assignment winners are masks in the graph, not scatters (each
    scatter came with a dozen shape operations, per seed)."""
    export_onnx(dcm_run, tmp_path)
    graph = onnx.load(str(tmp_path / USER_FILE)).graph
    clustering = [n.op_type for n in graph.node if "/conditions/" in n.name]
    assert "ArgMin" in clustering  # the farthest-point seeds are in there
    assert not [op for op in clustering if op.startswith("Scatter")]


def test_topics_pool_without_a_loop_unless_items_have_wide_topic_slots(
    dcm_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiembed.nn.summariser as summariser

    slots = int(load_run(dcm_run).features.topics.shape[1])
    assert 1 < slots <= summariser.EXPORT_DENSE_TOPICS
    export_onnx(dcm_run, tmp_path / "dense")
    assert "Loop" not in _ops(tmp_path / "dense" / USER_FILE) | _ops(tmp_path / "dense" / ITEM_FILE)
    monkeypatch.setattr(summariser, "EXPORT_DENSE_TOPICS", slots - 1)  # as if wider
    sidecar = export_onnx(dcm_run, tmp_path / "bag")  # still within the parity tolerance
    assert "Loop" in _ops(tmp_path / "bag" / USER_FILE)
    assert sidecar["parity"]["user_tower"] < PARITY_TOLERANCE
