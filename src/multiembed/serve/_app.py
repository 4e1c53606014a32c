"""The HTTP service: a FastAPI app factory over `retrieve`, with auth, limits and hot swap.

Endpoints:

- ``POST /retrieve`` (bearer token): a known ``user_id``, or a ``history`` and
  ``followed_topics``, and a ``budget`` (and ``include_topics``); answers
  candidates with provenance as columns (`Served.as_json`), serialised by orjson.
- ``GET /healthz`` (open): the process is alive.
- ``GET /readyz`` (open): 200 once a bundle is loaded, 503 before.
- ``GET /version`` (open): the served model version and the library version.
- ``POST /admin/reload`` (bearer token): load a new bundle and swap it in.
- ``GET /openapi.json``, ``/docs``: the schema.

Limits (`ServeLimits`): a larger body is refused with 413 before it is parsed; a
history, topic list or budget over its bound with 422 naming the field, value and
rule; at most `max_concurrency` requests run at once, and one more is refused at
once with 503 and ``Retry-After`` (a non-blocking semaphore acquire: a saturated
service sheds load instead of queueing it); a request running longer than
`timeout_s` is answered 504 (its worker still finishes, holding its slot, so the
bound on concurrent work stays true).

Hot swap (`BundleSlot`): a request takes a reference to the current bundle when
it starts and finishes on it; a reload builds the candidate bundle fully (every
checksum and the model version verified) before one reference assignment makes
it current. A candidate that fails to load is refused (409) and the old bundle
keeps serving.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

import multiembed
from multiembed.errors import ConfigError, MultiembedError
from multiembed.serve._bundle import ServingBundle
from multiembed.serve._retrieve import DEFAULT_BUDGET, RetrieveRequest, retrieve
from multiembed.serve.errors import ServeInputError

log = logging.getLogger("multiembed.serve")

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
        max_concurrency: requests retrieved at once; one more gets 503.
        timeout_s: per-request time limit (504 after).
        retry_after_s: the ``Retry-After`` of a 503.
    """

    max_body_bytes: int = 64 * 1024
    max_history: int = 1000
    max_topics: int = 200
    max_budget: int = 2000
    max_concurrency: int = 4
    timeout_s: float = 2.0
    retry_after_s: int = 1

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
        if not (isinstance(self.timeout_s, int | float) and self.timeout_s > 0):
            problems.append(f"serve.timeout_s = {self.timeout_s!r}: must be > 0")
        if problems:
            raise ConfigError(problems)


class BundleSlot:
    """The current `ServingBundle`, replaced atomically by `reload`.

    Readers call `current` once per request and keep the reference; `reload`
    runs the loader outside any reader's path and assigns the result only when
    it succeeded, so a failed candidate leaves the old bundle serving.
    """

    def __init__(
        self, loader: Callable[[], ServingBundle], initial: ServingBundle | None = None
    ) -> None:
        self._loader = loader
        self._bundle = initial
        self._reloading = threading.Lock()
        self.last_error: str | None = None

    def current(self) -> ServingBundle | None:
        return self._bundle

    def reload(self) -> ServingBundle:
        """Load a candidate bundle and make it current.

        Raises:
            MultiembedError: the candidate was refused (the old bundle stays current).
            RuntimeError: another reload is in progress.
        """
        if not self._reloading.acquire(blocking=False):
            raise RuntimeError("a reload is already in progress")
        try:
            bundle = self._loader()
        except MultiembedError as err:
            self.last_error = str(err)
            raise
        finally:
            self._reloading.release()
        self._bundle = bundle  # one reference assignment: atomic for readers
        self.last_error = None
        return bundle


class RetrieveBody(BaseModel):
    """``POST /retrieve`` body: a known ``user_id``, or a ``history`` and ``followed_topics``."""

    model_config = ConfigDict(extra="forbid")

    user_id: int | str | None = Field(None, description="raw user id of the data directory")
    history: list[int | str] = Field(default_factory=list, description="raw item ids, oldest first")
    followed_topics: list[int | str] = Field(default_factory=list, description="raw topic ids")
    budget: int = Field(DEFAULT_BUDGET, description="candidates to return")
    seed: int = Field(0, ge=0, description="topic-sampling seed")
    include_topics: bool = Field(
        False, description="also return each candidate's topics (ids and names)"
    )


class OrjsonResponse(Response):
    """A JSON response serialised by orjson, NumPy arrays included (no per-element Python).

    NaN and infinities would become ``null``: `retrieve` guarantees finite scores.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> OrjsonResponse:
    return OrjsonResponse(body, status_code=status, headers=headers)


class _BodyLimit:
    """Refuse bodies over `max_bytes` with 413: by Content-Length, or while reading a stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:  # buffer the body (bounded) so a chunked upload is limited too
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body]), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body over {self.max_bytes} bytes"
        await _json(413, {"detail": detail})(scope, receive, send)


def _replay(messages: list[Message]) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    return receive


def _check_limits(body: RetrieveBody, limits: ServeLimits) -> None:
    if not 1 <= body.budget <= limits.max_budget:
        raise HTTPException(
            422, f"budget = {body.budget}: must be an int in [1, {limits.max_budget}]"
        )
    if len(body.history) > limits.max_history:
        raise HTTPException(
            422, f"history has {len(body.history)} items: at most {limits.max_history} allowed"
        )
    if len(body.followed_topics) > limits.max_topics:
        raise HTTPException(
            422,
            f"followed_topics has {len(body.followed_topics)} topics: "
            f"at most {limits.max_topics} allowed",
        )


def create_app(
    bundle_loader: Callable[[], ServingBundle],
    *,
    token: str | None,
    limits: ServeLimits | None = None,
    initial: ServingBundle | None = None,
) -> FastAPI:
    """Build the FastAPI app (see the module docstring).

    Args:
        bundle_loader: builds a verified `ServingBundle` (e.g. ``lambda:
            build_bundle(run, data)``); called at startup unless `initial` is
            given, and on every ``POST /admin/reload``.
        token: the bearer token every non-health endpoint requires; None disables
            authentication (only sensible on a loopback address). Never logged.
        limits: `ServeLimits` (defaults when None).
        initial: an already loaded bundle to serve from the start.
    """
    limits = ServeLimits() if limits is None else limits
    slot = BundleSlot(bundle_loader, initial)
    expected = None if token is None else token.encode()
    bearer = HTTPBearer(auto_error=False)
    executor = ThreadPoolExecutor(limits.max_concurrency, thread_name_prefix="retrieve")
    gate = asyncio.Semaphore(limits.max_concurrency)

    def _initial_load() -> None:
        try:
            slot.reload()
        except (MultiembedError, RuntimeError) as err:
            log.error("initial bundle refused: %s", err)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if slot.current() is None:  # load in the background: /healthz answers meanwhile
            threading.Thread(target=_initial_load, name="bundle-load", daemon=True).start()
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="multiembed",
        version=multiembed.__version__,
        summary="Multi-embedding retrieval (implicit and explicit interests).",
        lifespan=lifespan,
    )
    app.state.slot = slot
    app.add_middleware(_BodyLimit, max_bytes=limits.max_body_bytes)

    def authenticate(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> None:
        if expected is None:
            return
        given = b"" if credentials is None else credentials.credentials.encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> OrjsonResponse:
        """Readiness: 200 once a bundle is loaded, 503 before."""
        bundle = slot.current()
        if bundle is None:
            return _json(503, {"ready": False, "error": slot.last_error})
        return _json(200, {"ready": True, "model_version": bundle.model_version})

    @app.get("/version", tags=["health"])
    async def version() -> dict[str, Any]:
        """The served model version and the library version."""
        bundle = slot.current()
        return {
            "model_version": None if bundle is None else bundle.model_version,
            "library_version": multiembed.__version__,
        }

    @app.post("/retrieve", dependencies=[Depends(authenticate)], tags=["retrieval"])
    async def retrieve_endpoint(body: RetrieveBody) -> OrjsonResponse:
        """Candidates with provenance for a known user, or for a history and followed topics."""
        _check_limits(body, limits)
        if gate.locked():  # saturated: shed at once rather than queue
            return _json(
                503,
                {"detail": "too many requests in flight"},
                {"Retry-After": str(limits.retry_after_s)},
            )
        bundle = slot.current()  # this request finishes on this bundle, whatever swaps
        if bundle is None:
            return _json(503, {"detail": "not ready"}, {"Retry-After": str(limits.retry_after_s)})
        request = RetrieveRequest(
            user_id=body.user_id,
            history=tuple(body.history),
            followed_topics=tuple(body.followed_topics),
            budget=body.budget,
            seed=body.seed,
            include_topics=body.include_topics,
        )
        await gate.acquire()  # does not wait: the gate was open and nothing awaited since
        future = asyncio.get_running_loop().run_in_executor(executor, retrieve, bundle, request)
        future.add_done_callback(lambda _: gate.release())
        try:
            served = await asyncio.wait_for(asyncio.shield(future), limits.timeout_s)
        except TimeoutError:
            return _json(504, {"detail": f"retrieval took over {limits.timeout_s} s"})
        except ServeInputError as err:
            return _json(err.status, {"detail": str(err)})
        return _json(200, served.as_json())

    @app.post("/admin/reload", dependencies=[Depends(authenticate)], tags=["admin"])
    async def reload() -> OrjsonResponse:
        """Load the bundle again (a new model/index version) and swap it in atomically."""
        old = slot.current()
        previous = None if old is None else old.model_version
        try:
            bundle = await run_in_threadpool(slot.reload)
        except MultiembedError as err:
            log.warning("reload refused, still serving %s: %s", previous, err)
            return _json(409, {"detail": f"refused: {err}", "model_version": previous})
        except RuntimeError as err:
            return _json(409, {"detail": str(err), "model_version": previous})
        return _json(200, {"model_version": bundle.model_version, "previous": previous})

    return app
