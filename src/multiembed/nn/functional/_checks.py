"""Argument checks for the public functions, with shapes spelled in the project's alphabet.

Every check raises `ValueError` (or `TypeError` for a wrong kind of object) whose
message names the function, the argument, what was expected and what was given. The
modules' constructors collect their problems (`size_problems`, `module_problems`)
and report them all at once (`raise_problems`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def check_shapes(where: str, **specs: tuple[Tensor | None, str]) -> dict[str, int]:
    """Bind dimension letters across tensors and return their sizes.

    Each keyword maps an argument name to `(tensor, "B L D")`; a `None` tensor
    (an optional argument left out) is skipped. A letter seen twice must have the
    same size both times. A spec ending in ``:float``, ``:bool`` or ``:int`` also
    requires a floating tensor (`check_floating`), a bool mask (True = real, so that 0/1
    floats are never mistaken for one) or an integer tensor, checked in argument order
    once every shape is.

    Example:
        >>> sizes = check_shapes("f", e=(torch.zeros(2, 5, 3), "B L D:float"), mask=(None, "B L"))
        >>> sizes
        {'B': 2, 'L': 5, 'D': 3}
    """
    sizes: dict[str, int] = {}
    source: dict[str, str] = {}
    for name, (tensor, spec) in specs.items():
        if tensor is None:
            continue
        letters = spec.partition(":")[0].split()
        shown = ", ".join(letters)
        if tensor.dim() != len(letters):
            raise ValueError(
                f"{where}: expected {name} of shape [{shown}], got shape {list(tensor.shape)}"
            )
        for letter, size in zip(letters, tensor.shape, strict=True):
            if letter in sizes and sizes[letter] != size:
                raise ValueError(
                    f"{where}: expected {name} of shape [{shown}] with {letter} = "
                    f"{sizes[letter]} (from {source[letter]}), got shape {list(tensor.shape)}"
                )
            sizes.setdefault(letter, int(size))
            source.setdefault(letter, name)
    for name, (tensor, spec) in specs.items():
        kind = spec.partition(":")[2]
        if tensor is None or not kind:
            continue
        if kind == "float":
            check_floating(where, name, tensor)
        elif kind == "bool" and tensor.dtype != torch.bool:
            raise ValueError(f"{where}: expected {name} of dtype torch.bool, got {tensor.dtype}")
        elif kind == "int" and (tensor.is_floating_point() or tensor.dtype == torch.bool):
            raise ValueError(f"{where}: expected {name} of an integer dtype, got {tensor.dtype}")
    return sizes


def check_floating(where: str, name: str, tensor: Tensor) -> None:
    """Require a floating-point tensor."""
    if not tensor.is_floating_point():
        raise ValueError(f"{where}: expected {name} of a floating dtype, got {tensor.dtype}")


def check_at_least(where: str, name: str, value: int, minimum: int) -> None:
    """Require an integer (not a bool) that is at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: expected {name} to be an int >= {minimum}, got {value!r}")


def check_positive(where: str, name: str, value: float) -> None:
    """Require a finite number greater than zero."""
    if not (isinstance(value, int | float) and 0 < value < float("inf")):
        raise ValueError(f"{where}: expected {name} > 0 and finite, got {value!r}")


def check_generator(where: str, generator: object) -> None:
    """Require a `torch.Generator`, so that no draw falls back to the global random state."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{where}: expected generator to be a torch.Generator, got {type(generator).__name__}"
        )


def check_ids(
    where: str, what: str, ids: Tensor, size: int, *, low: int = -1, got: str = ""
) -> None:
    """Require ids in ``[low, size - 1]`` (any empty tensor passes); the message names
    the range found after ``got`` (e.g. ``"values in "``)."""
    if ids.numel() and (int(ids.min()) < low or int(ids.max()) >= size):
        raise ValueError(
            f"{where}: expected {what} in [{low}, {size - 1}], "
            f"got {got}[{int(ids.min())}, {int(ids.max())}]"
        )


def size_problems(**sizes: int) -> list[str | None]:
    """The problem with each integer constructor argument (an int >= 1), or None."""
    return [
        None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1
        else f"{name} = {value!r}: must be an int >= 1"
        for name, value in sizes.items()
    ]


def raise_problems(where: str, problems: Sequence[str | None]) -> None:
    """Raise one `ValueError` listing every problem found (none: return)."""
    found = [p for p in problems if p is not None]
    if found:
        raise ValueError(f"invalid {where} arguments: " + "; ".join(found))


def module_problems(**parts: object) -> list[str]:
    """``name: expected an nn.Module, got <type>`` for each part that is not an `nn.Module`."""
    return [
        f"{name}: expected an nn.Module, got {type(part).__name__}"
        for name, part in parts.items()
        if not isinstance(part, nn.Module)
    ]
