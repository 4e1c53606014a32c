"""The library's import layers, read from the source with `ast`.

Every ``import`` of every module under ``src/multiembed`` counts, at module
level or inside a function (``if TYPE_CHECKING:`` blocks too), absolute or
relative. Two rules:

- a package imports another package's public names only, never one of its
  ``_private`` modules or names (top-level private modules such as
  ``multiembed._files`` are the library's shared internals, open to all);
- a package imports only packages of lower layers (`LAYERS`): packages of one
  layer are independent of each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "multiembed"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "_files", "_progress"),  # base errors, file helpers, progress bars
    ("multiembed", "config"),  # the root (version, base errors re-exported), configs
    ("data",),
    ("nn", "index"),
    ("runs", "retrieve"),
    ("eval",),
    ("train", "export", "onnx", "serve", "simulate"),  # what uses a run needs no trainer
    ("tune", "experiments"),
    ("api",),
    ("cli",),
    ("__main__",),
)
"""Lowest first. The unit of a module is its package below ``multiembed`` (a
top-level module is its own unit; ``multiembed`` is the root ``__init__``)."""

ALLOWED_UPWARD = {
    ("multiembed/__init__.py", "multiembed.api"): "the root's `api` attribute, imported lazily",
}
"""(importing file, imported module) pairs that may run up a layer, with the reason."""


class Import(NamedTuple):
    file: str  # relative to src/
    line: int
    unit: str  # the importing module's unit
    target: str  # the imported module or name, dotted


def _unit(dotted: str) -> str:
    """``multiembed.eval._records`` -> ``eval``; ``multiembed`` -> ``multiembed``."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _named(unit: str) -> str:
    return ROOT if unit == ROOT else f"{ROOT}.{unit}"


def _module_name(path: Path, src: Path = SRC) -> tuple[str, bool]:
    """The dotted name of the module at ``path`` and whether it is a package ``__init__``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if package else parts), package


def imports_of(path: Path, src: Path = SRC) -> Iterator[Import]:
    """Every import of the library's own modules in the file at ``path`` (under ``src``)."""
    name, package = _module_name(path, src)
    file = str(path.relative_to(src))
    unit = _unit(name)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=file)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, up level - 1
                base = name.split(".") if package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from M import x`: x is a submodule or a name of M; either way M.x is what is reached
            targets = [f"{module}.{alias.name}" for alias in node.names if alias.name != "*"]
            targets = targets or [module]
        else:
            continue
        for target in targets:
            if target == ROOT or target.startswith(ROOT + "."):
                yield Import(file, node.lineno, unit, target)


def all_imports() -> list[Import]:
    return [i for path in sorted((SRC / ROOT).rglob("*.py")) for i in imports_of(path)]


def _private_reach(imp: Import) -> str | None:
    """The first ``_private`` part of the target inside another unit, if any."""
    target_unit = _unit(imp.target)
    if target_unit == imp.unit:
        return None
    for part in imp.target.split(".")[2:]:
        if part.startswith("_") and not part.startswith("__"):
            return part
    return None


def _layer_of() -> dict[str, int]:
    return {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def private_violations(imports: list[Import]) -> list[str]:
    return [
        f"{i.file}:{i.line}: imports {i.target}, private ({reach}) to {_named(_unit(i.target))}"
        for i in imports
        if (reach := _private_reach(i)) is not None
    ]


def layer_violations(imports: list[Import]) -> list[str]:
    layer = _layer_of()
    out: dict[tuple[str, int, str], str] = {}  # one line per imported unit of a statement
    for i in imports:
        target = _unit(i.target)
        if target == i.unit or (i.file, i.target) in ALLOWED_UPWARD:
            continue
        if layer[target] >= layer[i.unit]:
            how = "a higher layer than" if layer[target] > layer[i.unit] else "the same layer as"
            out.setdefault(
                (i.file, i.line, target),
                f"{i.file}:{i.line}: imports {i.target}: {_named(target)} (layer "
                f"{layer[target]}) is in {how} {_named(i.unit)} (layer {layer[i.unit]})",
            )
    return list(out.values())


def test_every_package_has_a_layer():
    units = {_unit(_module_name(p)[0]) for p in (SRC / ROOT).rglob("*.py")}
    assert units - set(_layer_of()) == set(), "add these to LAYERS in tests/test_layers.py"
    assert set(_layer_of()) - units == set(), "LAYERS names units that do not exist"


def test_no_package_imports_another_packages_private_modules():
    problems = private_violations(all_imports())
    assert not problems, "\n".join(problems)


def test_no_import_runs_up_a_layer():
    problems = layer_violations(all_imports())
    assert not problems, "\n".join(problems)


def test_the_walker_sees_function_level_and_relative_imports(tmp_path: Path):
    # A stand-in module in the source tree's shape: `multiembed/nn/_probe.py`.
    path = tmp_path / ROOT / "nn" / "_probe.py"
    path.parent.mkdir(parents=True)
    path.write_text(
        "from . import _local\n"
        "def f():\n"
        "    from ..train._loop import train\n"
        "    import multiembed.serve\n",
        encoding="utf-8",
    )
    found = list(imports_of(path, tmp_path))
    assert [(i.line, i.unit, i.target) for i in found] == [
        (1, "nn", "multiembed.nn._local"),
        (3, "nn", "multiembed.train._loop.train"),
        (4, "nn", "multiembed.serve"),
    ]
    assert private_violations(found) == [
        "multiembed/nn/_probe.py:3: imports multiembed.train._loop.train, "
        "private (_loop) to multiembed.train"
    ]
    assert [p.split(": ")[0] for p in layer_violations(found)] == [
        "multiembed/nn/_probe.py:3",
        "multiembed/nn/_probe.py:4",
    ]


def test_evaluation_and_serving_load_no_trainer():
    """``eval`` and ``serve`` need a trained run (`multiembed.runs`), not the trainer."""
    code = (
        "import sys\n"
        "import multiembed.eval.evaluate, multiembed.serve, multiembed.export, multiembed.onnx\n"
        "print(sorted(m for m in sys.modules if m.startswith('multiembed.train')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "[]"
