"""How uvicorn serves the app: connection timeouts and an access log without secrets.

`server_options(limits)` gives the keyword arguments of ``uvicorn.run`` /
``uvicorn.Config``:

- ``http``: uvicorn's httptools protocol with a header timeout
  (`header_timeout_protocol`): a connection that has not sent a request's whole
  header block within ``limits.header_timeout_s`` is closed, so slow clients
  cannot hold connections open by trickling bytes (uvicorn has no such timeout
  of its own; the body has ``limits.body_timeout_s``, applied by the app);
- ``timeout_keep_alive``: an idle keep-alive connection is closed after
  ``limits.keep_alive_s``;
- ``loop``: uvloop (a request's HTTP handling costs a fraction of asyncio's).

`RedactQuery` is a logging filter for ``uvicorn.access``: it replaces a URL's
query string by ``?<redacted>``. The service reads no query parameters, and a
client that put its token in the URL would otherwise leave it in the log; the
app installs it while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from multiembed.serve._limits import ServeLimits

ACCESS_LOGGER = "uvicorn.access"


def header_timeout_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing a connection whose request headers take over `seconds`.

    The clock starts when the connection opens and again at each request's first
    byte (so a kept-alive connection cannot trickle its next request either); it
    stops when the headers are complete (the body has its own limit in the app).
    """

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:  # a request's first byte: its own clock
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    HeaderTimeoutProtocol.__qualname__ = f"HeaderTimeoutProtocol[{seconds} s]"
    return HeaderTimeoutProtocol


def server_options(limits: ServeLimits) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` that apply `limits` to connections."""
    return {
        "http": header_timeout_protocol(limits.header_timeout_s),
        "loop": "uvloop",
        "timeout_keep_alive": limits.keep_alive_s,
    }


class RedactQuery(logging.Filter):
    """Replace the query string of the URL in uvicorn's access log lines by ``?<redacted>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, mark, _ = args[2].partition("?")
            if mark:
                record.args = (*args[:2], f"{path}?<redacted>", *args[3:])
        return True
