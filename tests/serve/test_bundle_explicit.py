"""`build_bundle(explicit_run=)`: a Conditional Retrieval run served beside an implicit one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import multiembed.serve._bundle as bundle
from multiembed.errors import ConfigError


class _CR:
    def embed_conditioned(self) -> None: ...


def _run(fingerprint: str, n_items: int = 10, model: object | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        model=_CR() if model is None else model,
        manifest={"data": {"fingerprint": fingerprint}},
        features=SimpleNamespace(n_items=n_items),
        config=SimpleNamespace(model=SimpleNamespace(kind="implicit")),
        run_dir=Path("runs/dcm"),
    )


def test_the_explicit_run_must_be_trained_on_the_same_data(monkeypatch: pytest.MonkeyPatch):
    implicit = _run("a" * 64)
    for other in (_run("b" * 64), _run("a" * 64, n_items=11)):
        monkeypatch.setattr(bundle, "load_run", lambda *a, other=other, **k: other)
        with pytest.raises(ConfigError, match=r"trained on other data than runs/dcm"):
            bundle._explicit_model(implicit, Path("runs/cr"), None)  # type: ignore[arg-type]
    same = _run("a" * 64)
    monkeypatch.setattr(bundle, "load_run", lambda *a, **k: same)
    assert bundle._explicit_model(implicit, Path("runs/cr"), None) is same.model  # type: ignore[arg-type]


def test_the_explicit_run_must_be_a_conditional_one(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(bundle, "load_run", lambda *a, **k: _run("a" * 64, model=object()))
    with pytest.raises(ConfigError, match=r"expected a Conditional Retrieval run"):
        bundle._explicit_model(_run("a" * 64), Path("runs/dcm2"), None)  # type: ignore[arg-type]
