"""The command line starts light: help and the version never load the numerical stack.

Each command imports what it needs when it runs, so ``multiembed --help`` and
``multiembed <command> --help`` cost typer and rich, not torch or FAISS. Checked
through ``sys.modules`` in a fresh interpreter (a timing test would be flaky).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import multiembed

HEAVY = ("torch", "numpy", "pandas", "pyarrow", "faiss", "fastapi", "uvicorn", "matplotlib")


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def _loaded_after(code: str) -> list[str]:
    probe = _fresh(
        textwrap.dedent(code)
        + f"\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    assert probe.returncode == 0, probe.stderr
    return list(json.loads(probe.stdout.strip().splitlines()[-1]))


def test_importing_the_entry_point_loads_no_heavy_module() -> None:
    assert _loaded_after("import multiembed.cli.main") == []


def test_help_of_every_command_loads_no_heavy_module() -> None:
    code = """
        import contextlib, io, sys
        from multiembed.cli.main import app, main

        def commands(group, prefix):
            import typer.main
            click_group = typer.main.get_command(group)
            def walk(cmd, path):
                yield path
                for name, sub in getattr(cmd, "commands", {}).items():
                    yield from walk(sub, [*path, name])
            yield from walk(click_group, prefix)

        for path in commands(app, []):
            sys.argv = ["multiembed", *path, "--help"]
            with contextlib.redirect_stdout(io.StringIO()) as out:
                try:
                    main()
                except SystemExit as stop:
                    assert stop.code in (0, None), (path, stop.code)
            assert "Usage" in out.getvalue(), path
        """
    assert _loaded_after(code) == []


def test_version_prints_the_package_version() -> None:
    result = _fresh(
        "import sys; sys.argv = ['multiembed', '--version']\n"
        "from multiembed.cli.main import main; main()"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"multiembed {multiembed.__version__}\n"


@pytest.mark.parametrize("where", ["metadata", "fallback"])
def test_version_comes_from_the_installed_metadata_else_the_module(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import metadata

    from multiembed.cli import _version

    if where == "metadata":
        monkeypatch.setattr(metadata, "version", lambda name: "9.8.7")
        assert _version.package_version() == "9.8.7"
    else:

        def missing(name: str) -> str:
            raise metadata.PackageNotFoundError(name)

        monkeypatch.setattr(metadata, "version", missing)
        assert _version.package_version() == multiembed.__version__


def test_every_command_runs_with_the_serving_thread_settings() -> None:
    from multiembed.cli._threads import THREAD_ENV
    from multiembed.serve._threads import SERVE_ENV

    assert THREAD_ENV == SERVE_ENV
    code = f"""
        import json, os, sys
        for key in {sorted(THREAD_ENV)!r}:
            os.environ.pop(key, None)
        os.environ["OPENBLAS_NUM_THREADS"] = "3"  # the caller's value wins
        sys.argv = ["multiembed", "--version"]
        from multiembed.cli.main import main
        try:
            main()
        except SystemExit:
            pass
        print(json.dumps({{k: os.environ.get(k) for k in {sorted(THREAD_ENV)!r}}}))
        """
    result = _fresh(code)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "3"}


ROOT = Path(__file__).resolve().parents[2]


def test_module_version_and_licence_match_the_package_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert multiembed.__version__ == project["version"]
    assert project["license"] == "Apache-2.0"
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert " ".join(licence.split()[:5]) == "Apache License Version 2.0, January"
    assert "END OF TERMS AND CONDITIONS" in licence
