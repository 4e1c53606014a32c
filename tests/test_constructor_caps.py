"""Every `nn.Module` of the library takes at most `MAX_ARGUMENTS` constructor arguments.

A module that needs more is doing several things: group them into an injected part
or a small typed tuple (as `UserTower` takes a `Summary` and a `Residual`), not into
another keyword.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from torch import nn

import multiembed

MAX_ARGUMENTS = 6


def library_modules() -> list[type[nn.Module]]:
    """Every `nn.Module` subclass defined in ``multiembed`` (each submodule imported)."""
    for info in pkgutil.walk_packages(multiembed.__path__, "multiembed."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: list[type[nn.Module]] = []
    todo = list(nn.Module.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("multiembed.") and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def constructor_arguments(cls: type[nn.Module]) -> list[str]:
    """The arguments of the nearest ``__init__`` the library defines (none: nn.Module's)."""
    for klass in cls.__mro__:
        if klass is nn.Module:
            return []
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters.values()
            return [p.name for p in params if p.name != "self"]
    return []


def test_the_walk_finds_the_library_modules() -> None:
    names = {cls.__name__ for cls in library_modules()}
    assert {"UserTower", "RetrievalModel", "ConditionalRetrievalModel", "DHEN"} <= names


def test_every_module_constructor_takes_at_most_six_arguments() -> None:
    over = {
        f"{cls.__module__}.{cls.__qualname__}": args
        for cls in library_modules()
        if len(args := constructor_arguments(cls)) > MAX_ARGUMENTS
    }
    assert not over, "\n".join(
        f"{name}: {len(args)} arguments ({', '.join(args)}), at most {MAX_ARGUMENTS}"
        for name, args in over.items()
    )
