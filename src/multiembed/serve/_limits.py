"""Request limits of the service and the ASGI middleware that bounds request bodies.

`ServeLimits` holds every bound (sizes, concurrency, time); `BodyLimit` applies
the body ones before FastAPI reads a byte: a body over ``max_body_bytes`` is
refused with 413 (counting the whole body, across every chunk of a stream) and a
body not received within ``body_timeout_s`` with 408.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.responses import Response

from multiembed.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ServeLimits:
    """Request limits of the service, validated at construction.

    Attributes:
        max_body_bytes: largest request body (413 above).
        max_history: most history items in a body (422 above).
        max_topics: most followed topics in a body (422 above).
        max_budget: largest budget (422 above, and below 1).
        max_concurrency: requests retrieved at once (worker threads, one FAISS thread
            each).
        max_waiting: requests admitted beyond those, waiting for a worker (a burst
            queues briefly instead of being refused); one more gets 503.
        timeout_s: per-request time limit (504 after).
        retry_after_s: the ``Retry-After`` of a 503.
        body_timeout_s: time to receive a whole request body (408 after).
        header_timeout_s: time a connection has to send a request's headers
            before it is closed (applied by the server, see `server_options`).
        keep_alive_s: an idle keep-alive connection is closed after this.
    """

    max_body_bytes: int = 64 * 1024
    max_history: int = 1000
    max_topics: int = 200
    max_budget: int = 2000
    max_concurrency: int = 4
    max_waiting: int = 16
    timeout_s: float = 2.0
    retry_after_s: int = 1
    body_timeout_s: float = 10.0
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0

    def __post_init__(self) -> None:
        problems = []
        for name in (
            "max_body_bytes",
            "max_history",
            "max_topics",
            "max_budget",
            "max_concurrency",
            "retry_after_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"serve.{name} = {value!r}: must be an int >= 1")
        for name in ("timeout_s", "body_timeout_s", "header_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"serve.{name} = {value!r}: must be a number of seconds")
            elif not 0 < value < math.inf:
                problems.append(f"serve.{name} = {value!r}: must be finite and > 0")
        value = self.max_waiting
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"serve.max_waiting = {value!r}: must be an int >= 0")
        if problems:
            raise ConfigError(problems)


class OrjsonResponse(Response):
    """A JSON response serialised by orjson, NumPy arrays included (no per-element Python).

    NaN and infinities would become ``null``: `retrieve` guarantees finite scores.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> OrjsonResponse:
    return OrjsonResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413 and bodies slower than `timeout_s` with 408.

    The size counts the whole body: by Content-Length, and summed over every
    chunk of a streamed upload. The body is buffered (bounded) and handed on
    in one message.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        messages = None  # over the limit: refused before a byte of the body is read
        try:
            if length is None or (length.isdigit() and int(length) <= self.max_bytes):
                messages = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except TimeoutError:
            detail = f"request body not received within {self.timeout_s} s"
            await self._refuse(408, detail, scope, send)
            return
        if messages is None:
            await self._refuse(413, f"request body over {self.max_bytes} bytes", scope, send)
            return
        await self.app(scope, _replay(messages), send)

    async def _read(self, receive: Receive) -> list[Message] | None:
        """The body as one message (or a disconnect), None when over `max_bytes`."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return [message]
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def _refuse(self, status: int, detail: str, scope: Scope, send: Send) -> None:
        # the rest of the body is never read: the connection cannot be reused
        response = json_response(status, {"detail": detail}, {"Connection": "close"})
        await response(scope, _replay([]), send)


def _replay(messages: list[Message]) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    return receive
