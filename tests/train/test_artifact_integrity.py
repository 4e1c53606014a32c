"""Every byte a loader trusts is verified: one flipped byte in any artifact is refused.

A tiny trained run with its checkpoint, item index and cached training examples;
in every file, one byte of every position class (length prefix, header, JSON
document, padding, data, last byte) is flipped in turn. The run's files, the
checkpoint and the index are refused with a message naming the file; the example
cache is rebuilt with a warning naming the file, and the rebuilt examples are the
originals.
"""

from __future__ import annotations

import multiprocessing
import shutil
import struct
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from multiembed.config import Config
from multiembed.errors import MultiembedError
from multiembed.index import TopicIndex, load_index
from multiembed.serve import build_bundle
from multiembed.train import _checkpoint, _safetensors, load_run, train, training_examples
from multiembed.train._data import _exclusive, examples_key
from tests.train.train_helpers import tiny_config

CONFIG = tiny_config(max_steps=12, checkpoint_every=6, log_every=4)
FACTORY = "Flat"


@pytest.fixture(scope="module")
def artifacts(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(run, data)``: a finished run with checkpoint and item index; data with its cache."""
    root = tmp_path_factory.mktemp("integrity")
    data = root / "data"
    shutil.copytree(tiny_data, data)
    run = root / "run"
    train(CONFIG, data, run, progress=False)
    build_bundle(run, data, FACTORY)
    return run, data


def _positions(path: Path) -> dict[str, int]:
    """One byte offset per position class of ``path``'s format."""
    data = path.read_bytes()
    n = len(data)
    out = {"first": 0, "middle": n // 2, "last": n - 1}
    if path.suffix == ".safetensors":
        (size,) = struct.unpack("<Q", data[:8])
        out |= {
            "length prefix": 0,
            "length prefix, high byte": 7,
            "header opening": 8,
            "header": 8 + size // 2,
            "header end (padding)": 8 + size - 1,
            "tensor data, first": 8 + size,
            "tensor data": 8 + size + (n - 8 - size) // 2,
        }
        document = data.find(b'\\"step\\"')
        if document >= 0:
            out["JSON document (step)"] = document + 2
    elif path.suffix == ".npy":
        header_end = data.index(b"\n") + 1
        out |= {
            "magic": 1,
            "header length": 8,
            "header (shape)": data.index(b"shape") + 1,
            "header padding": header_end - 2,
            "array data": header_end + (n - header_end) // 2,
        }
    elif path.suffix == ".json":
        digits = [data.index(bytes([c])) for c in b"0123456789" if bytes([c]) in data]
        out |= {"indentation": data.index(b"  "), "digit": min(digits)}
    elif path.suffix == ".parquet":
        out |= {"magic": 0, "footer length": n - 5}
    return out


def _flips(path: Path) -> list[tuple[str, int]]:
    return sorted(_positions(path).items(), key=lambda item: item[1])


def _refusals(files: list[Path], load: Callable[[Path], object]) -> list[str]:
    """For each file and position: flip one bit, load, restore; what was accepted or misnamed."""
    problems = []
    for path in files:
        original = path.read_bytes()
        for what, offset in _flips(path):
            flipped = bytearray(original)
            flipped[offset] ^= 0x01
            path.write_bytes(bytes(flipped))
            try:
                load(path)
            except MultiembedError as err:
                if str(path) not in str(err):
                    problems.append(f"{path.name} [{what}]: message does not name it: {err}")
            else:
                problems.append(f"{path.name} [{what} @ {offset}]: accepted")
            finally:
                path.write_bytes(original)
    return problems


def test_every_flipped_byte_of_a_run_is_refused(artifacts: tuple[Path, Path]):
    run, _ = artifacts
    files = sorted(p for p in run.rglob("*") if p.is_file())
    index_dir = run / "index" / FACTORY
    checkpoint = _checkpoint.checkpoint_path(run)
    run_files = [p for p in files if p != checkpoint and index_dir not in p.parents]
    index_files = [p for p in files if index_dir in p.parents]
    assert {p.name for p in run_files} >= {
        "manifest.json",
        "config.toml",
        "weights.safetensors",
        "features.safetensors",
        "metrics.jsonl",
        "users.parquet",
        "items.parquet",
    }
    assert {p.name for p in index_files} >= {"manifest.json", "index.faiss", "vectors.npy"}
    version = load_run(run).model_version

    def load_index_dirs(_: Path) -> None:
        items = load_index(index_dir / "items", expected_model_version=version)
        TopicIndex.load(index_dir / "topics", expected_model_version=version, ann=items)

    problems = _refusals(run_files, lambda _: load_run(run))
    problems += _refusals([checkpoint], lambda p: _safetensors.read(p, _checkpoint.KIND))
    problems += _refusals(index_files, load_index_dirs)
    assert problems == []
    load_run(run)  # every file restored: the run loads again


def test_every_flipped_byte_of_the_example_cache_is_rebuilt(artifacts: tuple[Path, Path]):
    _, data = artifacts
    store, summary = training_examples(CONFIG, data, data / ".cache")
    want = {name: np.array(getattr(store, name)) for name in ("history", "target", "followed")}
    files = sorted(p for p in store.path.iterdir() if p.is_file())
    assert {p.suffix for p in files} == {".npy", ".json"}
    problems = []
    for path in files:
        for what, offset in _flips(path)[::2]:  # every other class: the cache is rebuilt each time
            flipped = bytearray(path.read_bytes())
            flipped[offset] ^= 0x01
            path.write_bytes(bytes(flipped))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rebuilt, counts = training_examples(CONFIG, data, data / ".cache")
            messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
            if not any(str(path) in m and "rebuilding" in m for m in messages):
                problems.append(f"{path.name} [{what} @ {offset}]: not rebuilt ({messages})")
            if counts != summary or any(
                not np.array_equal(getattr(rebuilt, k), v) for k, v in want.items()
            ):
                problems.append(f"{path.name} [{what}]: the examples changed")
    assert problems == []


def test_folders_of_killed_example_builds_are_removed(artifacts: tuple[Path, Path]):
    _, data = artifacts
    cache = data / ".cache"
    dead = 2**22 + 12345  # above Linux's largest process id: no such process
    orphan = cache / f".examples-0123456789abcdef.{dead}.k1ll3d_.tmp"
    orphan.mkdir()
    (orphan / "history.npy").write_bytes(b"half an array")
    training_examples(CONFIG, data, cache)
    assert not orphan.exists()
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []


def _build_in_child(config: Config, data: Path) -> None:
    warnings.simplefilter("error")  # a rebuild warning would mean it saw a half-built cache
    training_examples(config, data, data / ".cache")


def test_processes_sharing_the_cache_take_turns(artifacts: tuple[Path, Path]):
    """While one process holds the cache's lock, another waits instead of building alongside."""
    _, data = artifacts
    config = replace(CONFIG, examples=replace(CONFIG.examples, seq_len=10))  # not cached yet
    key = examples_key(config, data)
    context = multiprocessing.get_context("fork")
    with _exclusive(data / ".cache" / f"examples-{key}.lock"):
        child = context.Process(target=_build_in_child, args=(config, data))
        child.start()
        child.join(timeout=2.0)
        assert child.is_alive(), "built without waiting for the lock"
        assert not (data / ".cache" / f"examples-{key}").exists()
    child.join(timeout=120)
    assert child.exitcode == 0
    store, _ = training_examples(config, data, data / ".cache")
    assert store.seq_len == 10
