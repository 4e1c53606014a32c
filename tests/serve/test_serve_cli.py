"""`multiembed serve RUN`: uvloop and httptools, and a token required off loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from multiembed.cli import serve_cmd
from multiembed.cli.main import app
from multiembed.serve import ServeLimits, create_app


@pytest.fixture
def no_reexec(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pytest has loaded NumPy already: tell `serve` not to re-execute itself."""
    monkeypatch.setenv(serve_cmd._REEXEC, "1")
    monkeypatch.delenv(serve_cmd.TOKEN_ENV, raising=False)


@pytest.mark.usefixtures("no_reexec")
def test_serve_runs_uvicorn_on_uvloop_and_httptools(
    served_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, data = served_run
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    result = CliRunner().invoke(app, ["serve", str(run), "--data", str(data), "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
    assert calls[0]["loop"] == "uvloop"
    assert issubclass(calls[0]["http"], HttpToolsProtocol)  # with a header timeout
    assert (calls[0]["host"], calls[0]["port"]) == ("127.0.0.1", 8123)


@pytest.mark.usefixtures("no_reexec")
def test_serve_off_loopback_needs_a_token(served_run: tuple[Path, Path]) -> None:
    run, data = served_run
    result = CliRunner().invoke(app, ["serve", str(run), "--data", str(data), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--host 0.0.0.0: a non-loopback address needs --token-file" in result.output


@pytest.mark.usefixtures("no_reexec")
@pytest.mark.parametrize(
    ("args", "waiting"), [([], ServeLimits().max_waiting), (["--max-waiting", "0"], 0)]
)
def test_serve_passes_its_limits_to_the_app(
    served_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, args: list[str], waiting: int
) -> None:
    run, data = served_run
    seen: list[ServeLimits] = []

    def recording(*a: Any, limits: ServeLimits, **kw: Any) -> Any:
        seen.append(limits)
        return create_app(*a, limits=limits, **kw)

    monkeypatch.setattr("multiembed.serve.create_app", recording)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    cmd = ["serve", str(run), "--data", str(data), "--max-concurrency", "3", *args]
    result = CliRunner().invoke(app, cmd)
    assert result.exit_code == 0, result.output
    assert [(s.max_concurrency, s.max_waiting) for s in seen] == [(3, waiting)]
