"""Checkpoints and resume: an interrupted run ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from multiembed.train import RunIntegrityError, _checkpoint, _safetensors, train
from tests.train.train_helpers import run_cli, tiny_config, write_config

# 122 batches of 64 per epoch on the tiny world: 150 steps cross an epoch boundary.
STEPS = 150
# Validation lines (steps 40, 80, 120 and the epoch's end, 122) are part of the comparison:
# they must neither move the trajectory nor differ after a resume.
VALIDATE_EVERY = 40
CONFIG = tiny_config(max_steps=STEPS, validate_every=VALIDATE_EVERY)


def _same_files(a: Path, b: Path) -> None:
    for name in ("weights.safetensors", "frequency.safetensors"):
        wa, wb = load_file(a / name), load_file(b / name)
        assert wa.keys() == wb.keys()
        for key in wa:
            assert torch.equal(wa[key], wb[key]), f"{name}: {key} differs"
    timing = {"examples_per_s", "validation_s"}

    def lines(run: Path) -> list[dict]:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in timing} for r in rows]

    assert lines(a) == lines(b)
    assert [r["step"] for r in lines(a) if "validation" in r] == [40, 80, 120, 122]
    ma, mb = (json.loads((r / "manifest.json").read_text()) for r in (a, b))
    assert ma["model_version"] == mb["model_version"]


@pytest.fixture(scope="module")
def reference(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run."""
    run = tmp_path_factory.mktemp("reference") / "run"
    result = train(CONFIG, tiny_data, run, progress=False)
    assert result.steps == STEPS
    assert result.epochs == 1
    assert result.resumed_from is None
    return run


def test_stop_at_a_step_then_resume_is_bit_identical(reference: Path, tiny_data: Path, tmp_path):
    run = tmp_path / "run"
    first = train(
        tiny_config(max_steps=70, validate_every=VALIDATE_EVERY), tiny_data, run, progress=False
    )
    assert first.steps == 70
    position = _safetensors.read(_checkpoint.checkpoint_path(run), _checkpoint.KIND)[1]
    assert position["position"] == {
        "epoch": 0,
        "batch": 70,
        "step": 70,
        "examples": 70 * 64,
        "without_condition": 0,  # implicit models condition nothing
        "skipped_batches": 0,
    }
    second = train(CONFIG, tiny_data, run, progress=False)
    assert second.resumed_from == 70
    assert second.steps == STEPS
    _same_files(reference, run)


def test_sigkill_mid_epoch_then_resume_is_bit_identical(
    reference: Path, tiny_data: Path, tmp_path: Path
):
    """`multiembed train` killed with SIGKILL after its first checkpoint, then run again."""
    config = write_config(tmp_path / "tiny.toml", CONFIG)
    run = tmp_path / "run"
    args = ["train", "--data", str(tiny_data), "--out", str(run), "--config", str(config)]
    process = subprocess.Popen(
        [sys.executable, "-m", "multiembed", *args, "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    checkpoint = _checkpoint.checkpoint_path(run)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (run / "manifest.json").exists(), "killed too late: the run had finished"
    step = _safetensors.read(checkpoint, _checkpoint.KIND)[1]["position"]["step"]
    assert 0 < step < STEPS
    assert step % CONFIG.train.checkpoint_every == 0
    resumed = run_cli(*args, "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"(resumed from step {step})" in resumed.stdout
    _same_files(reference, run)


def test_corrupt_checkpoint_is_refused(tiny_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    train(tiny_config(max_steps=5), tiny_data, run, progress=False)
    path = _checkpoint.checkpoint_path(run)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RunIntegrityError, match=r"checkpoint\.safetensors: checksum mismatch"):
        train(tiny_config(max_steps=10), tiny_data, run, progress=False)
    path.write_bytes(bytes(data[:50]))
    with pytest.raises(RunIntegrityError, match=r"checkpoint\.safetensors: truncated"):
        train(tiny_config(max_steps=10), tiny_data, run, progress=False)


def test_resume_with_another_config_is_refused(tiny_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    train(tiny_config(max_steps=5), tiny_data, run, progress=False)
    with pytest.raises(RunIntegrityError) as err:
        train(tiny_config(max_steps=10, lr=0.01, model={"k": 2}), tiny_data, run, progress=False)
    assert "written with another configuration: model.k = 2 (checkpoint: 3); " in str(err.value)
    assert "train.lr = 0.01 (checkpoint: 0.003)" in str(err.value)
    fresh = train(tiny_config(max_steps=3), tiny_data, run, progress=False, resume=False)
    assert fresh.resumed_from is None
    assert fresh.steps == 3


def _flip(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) == 1, old
    assert len(old) == len(new)
    path.write_bytes(data.replace(old, new))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'\\"step\\": 5,', b'\\"step\\": 7,'),  # one bit: resume at step 7
        (b'\\"batch\\": 5,', b'\\"batch\\": 1,'),  # one bit: repeat batches 1..4
        (b"0.9, 0.999", b"0.1, 0.999"),  # Adam's beta1
    ],
    ids=["step", "batch", "beta1"],
)
def test_flipped_checkpoint_document_is_refused(
    tiny_data: Path, tmp_path: Path, old: bytes, new: bytes
):
    """The JSON document of a checkpoint is covered by its checksum, not only the tensors."""
    run = tmp_path / "run"
    train(tiny_config(max_steps=5), tiny_data, run, progress=False)
    _flip(_checkpoint.checkpoint_path(run), old, new)
    with pytest.raises(RunIntegrityError, match=r"checkpoint\.safetensors: checksum mismatch"):
        train(tiny_config(max_steps=10), tiny_data, run, progress=False)


def test_failed_checkpoint_write_keeps_the_previous_one(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A save that dies halfway leaves the last checkpoint whole (written aside, then renamed)."""
    run = tmp_path / "run"
    train(tiny_config(max_steps=5), tiny_data, run, progress=False)
    path = _checkpoint.checkpoint_path(run)
    before = path.read_bytes()

    write_bytes = Path.write_bytes

    def half_then_fail(self: Path, data: bytes) -> int:
        if "checkpoint" not in self.name:
            return write_bytes(self, data)
        write_bytes(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        train(tiny_config(max_steps=30), tiny_data, run, progress=False)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    resumed = train(tiny_config(max_steps=30), tiny_data, run, progress=False)
    assert resumed.resumed_from == 5


def test_orphan_temporaries_of_killed_saves_are_removed(tiny_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    train(tiny_config(max_steps=5), tiny_data, run, progress=False)
    dead = 2**22 + 12345  # above Linux's largest process id: no such process
    orphans = [
        run / "checkpoint" / f".checkpoint.safetensors.{dead}.0a1b2c3d.tmp",
        run / f".weights.safetensors.{dead}.0a1b2c3d.tmp",
    ]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")
    live = run / "checkpoint" / f".checkpoint.safetensors.{os.getppid()}.0a1b2c3d.tmp"
    live.write_bytes(b"a write in progress")
    train(tiny_config(max_steps=30), tiny_data, run, progress=False)
    assert not any(p.exists() for p in orphans)
    assert live.exists()
