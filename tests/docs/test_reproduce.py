"""docs/reproduce.md names only commands, options, scripts and flags that exist.

Every command line of its ```bash blocks is checked without running it:

- ``multiembed ...``: each subcommand exists in the Typer app, each ``--option``
  is one of that subcommand's, and click parses the whole line (arity, required
  options, value types); an experiment's name is a registered experiment;
- ``python bench/X.py ...``: the script exists and each ``--flag`` is one of its
  ``add_argument`` strings; ``bench/public_splits.py``'s ``--setting`` overrides
  and ``--splits`` name real settings (valid values) and splits;
- ``make X``: X is a target of the Makefile;
- a TOML file written by a heredoc is a valid configuration.

Programs outside the project (``../shared/benchmark/...``) and plain shell
(``cat``, ``mkdir``, ``cp``) pass unchecked; any other program fails, so a
misspelled ``multiembed`` is caught too.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer

from multiembed.cli.main import app
from multiembed.config import Config, parse, settings
from multiembed.errors import ConfigError
from multiembed.experiments import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reproduce.md"
SHELL = {"cat", "mkdir", "cp"}
OUTSIDE = "../shared/"
SEPARATORS = {"&&", "||", ";", "|"}


@dataclass(frozen=True)
class Heredoc:
    target: str
    body: str


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def logical_lines(block: str) -> tuple[list[str], list[Heredoc]]:
    """The block's command lines (continuations joined, heredoc bodies left out) and
    its heredocs with the file each writes."""
    lines: list[str] = []
    heredocs: list[Heredoc] = []
    raw = block.splitlines()
    i = 0
    while i < len(raw):
        line = raw[i]
        while line.endswith("\\") and i + 1 < len(raw):
            i += 1
            line = line[:-1] + " " + raw[i].strip()
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        lines.append(line)
        here = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if here:
            end = raw.index(here.group(1), i)
            target = re.search(r">\s*(\S+)", line[: here.start()])
            heredocs.append(Heredoc(target.group(1) if target else "", "\n".join(raw[i:end])))
            i = end + 1
    return lines, heredocs


def commands(line: str) -> list[list[str]]:
    """The simple commands of a line, wrappers (``VAR=v``, ``nice -n N``, ``time -v``) removed."""
    tokens = shlex.split(line.split("<<")[0], comments=True)
    out: list[list[str]] = [[]]
    for token in tokens:
        if token in SEPARATORS:
            out.append([])
        else:
            out[-1].append(token)
    stripped = []
    for cmd in filter(None, out):
        while cmd and re.fullmatch(r"[A-Za-z_]\w*=.*", cmd[0]):
            cmd = cmd[1:]
        while cmd and Path(cmd[0]).name in {"nice", "time"}:
            cmd = cmd[1:]
            while cmd and cmd[0].startswith("-"):
                cmd = cmd[2:] if cmd[0] == "-n" else cmd[1:]
        if cmd:
            stripped.append(cmd)
    return stripped


@cache
def root_command() -> Any:
    """The app as its command-line parser sees it (Typer's own click: duck-typed)."""
    return typer.main.get_command(app)


def is_group(cmd: Any) -> bool:
    return hasattr(cmd, "list_commands")


def check_cli(args: list[str], line: str) -> None:
    cmd = root_command()
    path = ["multiembed"]
    rest = list(args)
    while is_group(cmd):
        assert rest, f"{line!r}: no subcommand after {path}"
        assert not rest[0].startswith("-"), f"{line!r}: no subcommand after {path}"
        name = rest.pop(0)
        sub = cmd.get_command(typer.Context(cmd, info_name=path[-1]), name)
        assert sub is not None, f"{line!r}: `{' '.join(path)}` has no command {name!r}"
        cmd = sub
        path.append(name)
    options = {
        opt
        for p in cmd.params
        if p.param_type_name == "option"
        for opt in (*p.opts, *p.secondary_opts)
    }
    for token in rest:
        if token.startswith("--"):
            option = token.split("=", 1)[0]
            assert option in options, f"{line!r}: `{' '.join(path)}` has no option {option}"
    try:
        ctx = cmd.make_context(" ".join(path), list(rest))
    except typer.TyperException as e:  # click's UsageError: arity, required, types
        pytest.fail(f"{line!r}: {e}")
    if path[1:] == ["experiment"]:
        assert ctx.params["name"] in EXPERIMENTS, f"{line!r}: no experiment {ctx.params['name']!r}"


@cache
def argparse_flags(script: Path) -> frozenset[str]:
    """Every option string the script's ``add_argument`` calls declare."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    return frozenset(
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
        for arg in node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value[:1] == "-"
    )


@cache
def public_splits() -> ModuleType:
    spec = importlib.util.spec_from_file_location("public_splits", ROOT / "bench/public_splits.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def option_values(args: list[str], flag: str) -> list[str]:
    values = []
    for i, token in enumerate(args):
        if token == flag and i + 1 < len(args):
            values.append(args[i + 1])
        elif token.startswith(flag + "="):
            values.append(token.split("=", 1)[1])
    return values


def check_config(document: dict, where: str) -> None:
    keys = {s.key for s in settings()}
    for section, values in document.items():
        assert isinstance(values, dict), f"{where}: [{section}] is not a table"
        for key in values:
            assert f"{section}.{key}" in keys, f"{where}: no setting {section}.{key}"
    parse(Config, document, source=where)  # raises ConfigError on a bad value


def check_bench(args: list[str], line: str) -> None:
    script = ROOT / args[0]
    assert script.is_file(), f"{line!r}: no script {args[0]}"
    flags = argparse_flags(script)
    for token in args[1:]:
        if token.startswith("--"):
            flag = token.split("=", 1)[0]
            assert flag in flags, f"{line!r}: {args[0]} has no flag {flag}"
    if script.name == "public_splits.py":
        module = public_splits()
        for setting in option_values(args, "--setting"):
            _, overrides = module.parse_setting(setting)
            check_config(overrides, f"{line!r}: --setting {setting}")
        for splits in option_values(args, "--splits"):
            for split in filter(None, splits.split(",")):
                assert split in module.SPLITS, f"{line!r}: no split {split!r}"


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+):", text, flags=re.M))


def check_line(line: str) -> None:
    """Fails (AssertionError or pytest's Failed) when the line names anything that does
    not exist."""
    for cmd in commands(line):
        program, args = cmd[0], cmd[1:]
        name = Path(program).name
        if name == "multiembed":
            check_cli(args, line)
        elif name.startswith("python"):
            if args[:2] == ["-m", "multiembed"]:
                check_cli(args[2:], line)
            elif args and args[0].startswith(OUTSIDE):
                continue
            else:
                assert args, f"{line!r}: python without a script"
                assert args[0].startswith("bench/"), f"{line!r}: not a bench/ script"
                check_bench(args, line)
        elif name == "make":
            for target in args:
                assert target in make_targets(), f"{line!r}: no make target {target!r}"
        elif program.startswith(OUTSIDE) or name in SHELL:
            continue
        else:
            pytest.fail(f"{line!r}: unknown program {program!r}")


def doc_lines() -> tuple[list[str], list[Heredoc]]:
    lines: list[str] = []
    heredocs: list[Heredoc] = []
    for block in bash_blocks(DOC.read_text(encoding="utf-8")):
        more, docs = logical_lines(block)
        lines += more
        heredocs += docs
    return lines, heredocs


LINES, HEREDOCS = doc_lines()


def _id(line: str) -> str:
    first = commands(line)[0]
    return " ".join([Path(first[0]).name, *first[1:3]])[:60]


@pytest.mark.parametrize("line", LINES, ids=[f"{i}:{_id(x)}" for i, x in enumerate(LINES)])
def test_every_command_line_names_what_exists(line: str) -> None:
    check_line(line)


def test_the_doc_covers_the_cli_and_the_bench_scripts() -> None:
    programs = [cmd[0] for line in LINES for cmd in commands(line)]
    scripts = {
        cmd[1] for line in LINES for cmd in commands(line) if cmd[0] == "python" and len(cmd) > 1
    }
    assert sum(Path(p).name == "multiembed" for p in programs) >= 10
    assert {
        "bench/public_splits.py",
        "bench/interest_collapse.py",
        "bench/serve_http.py",
        "bench/serve_latency.py",
    } <= scripts


@pytest.mark.parametrize("heredoc", HEREDOCS, ids=[h.target for h in HEREDOCS])
def test_every_toml_file_it_writes_is_a_valid_configuration(heredoc: Heredoc) -> None:
    assert heredoc.target.endswith(".toml"), heredoc.target
    check_config(tomllib.loads(heredoc.body), heredoc.target)


@pytest.mark.parametrize(
    "line",
    [
        "multiembed experimnt online_table5 --data w --out t5",  # subcommand
        "multiembed experiment online_table5 --data w --out t5 --seed 0",  # option
        "multiembed experiment online_tabel5 --data w --out t5",  # experiment name
        "multiembed experiment online_table5 --out t5",  # a required option left out
        "multiembed config shw --preset paper",  # a subcommand of a group
        "multiembd demo",  # program
        "python bench/serve_htp.py",  # script
        "python bench/serve_latency.py --ef_search 128",  # script flag
        "python bench/public_splits.py --runner r --out o --setting x=model.dcm_recncy=5.0",
        "python bench/public_splits.py --runner r --out o --setting x=model.k=0",  # bad value
        "python bench/public_splits.py --runner r --out o --splits ml-1m",
        "make dmeo",
    ],
)
def test_the_checker_refuses_what_does_not_exist(line: str) -> None:
    with pytest.raises((AssertionError, pytest.fail.Exception, ConfigError)):
        check_line(line)
