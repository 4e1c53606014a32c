"""Turns library errors into one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console

from multiembed.errors import MultiembedError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def friendly_errors(fn: F) -> F:
    """Runs a command; a MultiembedError or OS error becomes `error: ...` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MultiembedError as err:
            err_console.print(f"[bold red]error:[/] {err}", markup=True)
            sys.exit(err.exit_code)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
            err_console.print(f"[bold red]error:[/] {err.strerror}: {err.filename}", markup=True)
            sys.exit(2)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
