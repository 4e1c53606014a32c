"""Hostile command-line arguments end in a message and exit code 2, never a traceback.

In-process (typer's runner): the library is replaced where a check must stop the
command before it would load a run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

import multiembed.serve
from multiembed.cli import serve_cmd
from multiembed.cli.main import app
from multiembed.errors import ConfigError, MultiembedError


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def _refused(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["prepare", "--dataset", "synthetic"],
        ["train", "--data", "data"],
        ["export", "run"],
        ["experiment", "table1", "--data", "data"],
        ["benchmark", "data"],
        ["demo"],
    ],
    ids=lambda c: c[0],
)
def test_out_that_is_a_file_is_refused(command: list[str], a_file: Path) -> None:
    _refused(invoke(*command, "--out", str(a_file)), "--out", "is a file")


def test_download_to_a_file_is_refused(a_file: Path) -> None:
    _refused(invoke("datasets", "download", "ml-latest-small", "--to", str(a_file)), "is a file")


def test_out_below_a_file_is_an_os_error_message(a_file: Path) -> None:
    result = invoke("prepare", "--dataset", "synthetic", "--out", str(a_file / "sub"))
    _refused(result, "error: ", str(a_file))


@pytest.fixture
def no_bundle(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """`retrieve` gets a stand-in bundle; its requests are recorded, then refused."""
    requests: list[object] = []

    class Bundle:
        n_items = 100

    def retrieve(bundle: object, request: object) -> None:
        requests.append(request)
        raise ConfigError(["stand-in: stop"])

    monkeypatch.setattr(multiembed.serve, "build_bundle", lambda *a, **k: Bundle())
    monkeypatch.setattr(multiembed.serve, "retrieve", retrieve)
    return requests


@pytest.mark.parametrize(
    ("user", "parsed"),
    [
        ("17", 17),
        ("-3", -3),
        ("²", "²"),  # a superscript digit: str.isdigit() says yes, int() says no
        ("٣", "٣"),  # an Arabic-Indic three: int() would read it as user 3
        ("1_000", "1_000"),
        (" 12", " 12"),
        ("abc", "abc"),
    ],
)
def test_user_ids_are_ascii_integers_or_raw_strings(
    user: str, parsed: int | str, no_bundle: list[object], tmp_path: Path
) -> None:
    _refused(invoke("retrieve", str(tmp_path), "--data", str(tmp_path), "--user", user), "stand-in")
    assert [r.user_id for r in no_bundle] == [parsed]  # type: ignore[attr-defined]


def test_a_user_id_beyond_64_bits_is_refused(no_bundle: list[object], tmp_path: Path) -> None:
    big = str(2**64)
    result = invoke("retrieve", str(tmp_path), "--data", str(tmp_path), "--user", big)
    _refused(result, f"--user = {big}: an integer id must fit in a signed 64-bit integer")
    assert no_bundle == []


@pytest.mark.parametrize(
    ("budget", "rule"),
    [
        ("1000000000000", "less than or equal to 100000"),
        ("100001", "less than or equal to 100000"),
        ("0", "greater than or equal to 1"),
    ],
)
def test_retrieve_budget_is_bounded_before_loading(
    budget: str, rule: str, no_bundle: list[object], tmp_path: Path
) -> None:
    result = invoke(
        "retrieve", str(tmp_path), "--data", str(tmp_path), "--user", "1", "--budget", budget
    )
    _refused(result, "Invalid value for '--budget'", rule)
    assert no_bundle == []


@pytest.fixture
def no_reexec(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test process has loaded NumPy already: tell `serve` not to re-execute itself."""
    monkeypatch.setenv(serve_cmd._REEXEC, "1")
    monkeypatch.delenv(serve_cmd.TOKEN_ENV, raising=False)
    monkeypatch.setattr(
        multiembed.serve, "build_bundle", lambda *a, **k: pytest.fail("the run was loaded")
    )


@pytest.mark.usefixtures("no_reexec")
@pytest.mark.parametrize(
    ("port", "rule"),
    [
        ("70000", "less than or equal to 65535"),
        ("65536", "less than or equal to 65535"),
        ("0", "greater than or equal to 1"),
        ("-1", "greater than or equal to 1"),
    ],
)
def test_serve_port_out_of_range_is_refused(port: str, rule: str, tmp_path: Path) -> None:
    _refused(invoke("serve", str(tmp_path), "--port", port), "Invalid value for '--port'", rule)


@pytest.mark.usefixtures("no_reexec")
def test_serve_token_file_not_utf8_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"\xff\xfesecret")
    result = invoke("serve", str(tmp_path), "--token-file", str(token))
    _refused(result, f"--token-file {token}: not UTF-8 text (byte 0)")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\xff\xfesecret", "not UTF-8 text (byte 0)"),
        (b"s3cr\xc3\xa9t\n", "'\u00e9' at character 4 is not printable ASCII"),
        (b"a\x00b", "'\\x00' at character 1 is not printable ASCII"),
        (b" \n", "the file is empty"),
    ],
)
def test_token_file_problems_are_named(content: bytes, problem: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(content)
    with pytest.raises(MultiembedError) as info:
        serve_cmd._read_token(token)
    assert str(info.value).endswith(f"--token-file {token}: {problem}")


def test_token_file_keeps_a_printable_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"  abc-DEF_123.~+/=  \n")
    assert serve_cmd._read_token(token) == "abc-DEF_123.~+/="


@pytest.mark.parametrize("key", ["[/x]", "[red]x", "[bold"])
def test_messages_print_hostile_text_verbatim(key: str, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[split]\n"{key}" = 1\n', encoding="utf-8")
    result = invoke(
        "prepare", "--dataset", "synthetic", "--out", str(tmp_path / "o"), "--config", str(config)
    )
    _refused(result, f"split.{key} = 1: unknown key")
