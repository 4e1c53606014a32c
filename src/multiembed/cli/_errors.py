"""Turns library errors into one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.text import Text

from multiembed.errors import MultiembedError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _say_error(message: str) -> None:
    """`error: message`, the message verbatim: paths and keys may hold [brackets]."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message))


def friendly_errors(fn: F) -> F:
    """Runs a command; a MultiembedError or OS error becomes `error: ...` and exit code 2.

    OS errors are those of the paths a user gave: a file where a folder is
    expected (or the reverse), a missing or unreadable file, a full disk.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MultiembedError as err:
            _say_error(str(err))
            sys.exit(err.exit_code)
        except OSError as err:
            where = "" if err.filename is None else f": {err.filename}"
            _say_error(f"{err.strerror or err}{where}")
            sys.exit(2)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
