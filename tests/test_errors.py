"""One bad-argument error and one way to describe an argument, shared by every package.

The packages' input errors (index, retrieval plan, metrics) are subclasses of
`multiembed.errors.ArgumentError` with its constructor and message, and the only
``describe`` of an argument for such a message is `multiembed.errors.describe`: the
source is read with `ast`, so a new copy in any module fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from multiembed.errors import ArgumentError, MultiembedError, describe
from multiembed.eval.errors import MetricInputError
from multiembed.index import IndexInputError
from multiembed.retrieve import RetrievalInputError

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "multiembed"
INPUT_ERRORS = (IndexInputError, MetricInputError, RetrievalInputError)
OTHER_DESCRIBES = {
    "nn/summariser.py": "tensors, named as 'a tensor of shape [...]' in the summariser's messages",
}
"""Modules allowed their own ``describe`` (file relative to the package: why)."""


def _functions(path: Path) -> list[ast.FunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]


def _modules() -> list[tuple[str, Path]]:
    return [(str(p.relative_to(PACKAGE)), p) for p in sorted(PACKAGE.rglob("*.py"))]


@pytest.mark.parametrize("cls", INPUT_ERRORS, ids=lambda c: c.__name__)
def test_package_input_errors_share_the_base_and_its_message(cls: type[ArgumentError]):
    assert issubclass(cls, ArgumentError)
    assert "__init__" not in vars(cls)
    assert "__str__" not in vars(cls)
    err = cls("search", "queries", "a [Q, 8] float array", "[3, 4] float32")
    assert isinstance(err, MultiembedError)
    assert isinstance(err, ValueError)
    assert err.exit_code == 2
    assert (err.where, err.argument, err.expected, err.got) == (
        "search",
        "queries",
        "a [Q, 8] float array",
        "[3, 4] float32",
    )
    assert str(err) == "search: queries must be a [Q, 8] float array, got [3, 4] float32"


def test_no_module_but_errors_defines_the_bad_argument_constructor():
    signature = ["self", "where", "argument", "expected", "got"]
    found = [
        name
        for name, path in _modules()
        for fn in _functions(path)
        if fn.name == "__init__" and [a.arg for a in fn.args.args] == signature
    ]
    assert found == ["errors.py"]


def test_no_module_but_errors_defines_describe():
    found = {
        name
        for name, path in _modules()
        for fn in _functions(path)
        if fn.name in ("describe", "_describe")
    }
    assert found == {"errors.py", *OTHER_DESCRIBES}


def test_describe_names_shape_and_dtype_of_arrays_and_the_type_of_the_rest():
    assert describe(np.zeros((2, 0, 3), dtype=np.int64)) == "[2, 0, 3] int64"
    assert describe(np.float32(1.0)) == "float32"
    assert describe(None) == "NoneType"
