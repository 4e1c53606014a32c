"""The HTTP service: a FastAPI app factory over `retrieve`, with auth, limits and hot swap.

Endpoints:

- ``POST /retrieve`` (bearer token): a known ``user_id``, or a ``history`` and
  ``followed_topics``, and a ``budget`` (and ``include_topics``); answers
  candidates with provenance as columns (`Served.as_json`), serialised by orjson.
- ``GET /healthz`` (open): the process is alive.
- ``GET /readyz`` (open): 200 once a bundle is loaded, 503 before.
- ``GET /version`` (open): the served model version and the library version.
- ``POST /admin/reload`` (bearer token): load a new bundle and swap it in (`BundleSlot`:
  a request finishes on the bundle it started on; a refused candidate, 409, leaves
  the old one serving).
- ``GET /openapi.json``: the schema, every status declared with its body model;
  ``GET /docs``: a self-contained reference page over it (`docs_page`: no CDN).

Input (`RetrieveBody`) is validated strictly; every refusal is a 422
`InputErrorBody` naming each field, its value and the rule, as are a history,
topic list or budget over its bound (`ServeLimits`). Bodies are bounded by
`BodyLimit` before they are parsed (413, 408).

Admission: at most `max_concurrency` requests run at once and up to `max_waiting`
more wait for a worker (a burst queues for a few milliseconds instead of being
refused); one more is refused at once with 503 and ``Retry-After`` (a non-blocking
semaphore acquire: a saturated service sheds load instead of queueing without
bound). A request not answered within `timeout_s` of its admission is answered
504; one still waiting is dropped from the queue, one running finishes, holding
its slot, so the bound on concurrent work stays true.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

import multiembed
from multiembed.errors import MultiembedError
from multiembed.serve._bundle import ServingBundle
from multiembed.serve._docs import docs_page
from multiembed.serve._limits import BodyLimit, OrjsonResponse, ServeLimits, json_response
from multiembed.serve._retrieve import DEFAULT_BUDGET, RetrieveRequest, retrieve
from multiembed.serve._schema import (
    ErrorBody,
    FieldProblem,
    HealthBody,
    InputErrorBody,
    ReadyBody,
    ReloadBody,
    ReloadRefused,
    RetrieveBody,
    RetrieveResponse,
    VersionBody,
    input_error,
    input_problems,
)
from multiembed.serve._server import ACCESS_LOGGER, RedactQuery
from multiembed.serve.errors import ServeInputError

log = logging.getLogger("multiembed.serve")


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


def _check_limits(body: RetrieveBody, limits: ServeLimits) -> list[FieldProblem]:
    """The body's problems with `limits` (budget, history and topic list lengths)."""
    problems = []
    if body.budget is not None and not 1 <= body.budget <= limits.max_budget:
        rule = f"must be an int in [1, {limits.max_budget}]"
        problems.append(FieldProblem(field="budget", problem=f"{body.budget}: {rule}"))
    for field, values, most in (
        ("history", body.history, limits.max_history),
        ("followed_topics", body.followed_topics, limits.max_topics),
    ):
        if len(values) > most:
            problem = f"{len(values)} ids: at most {most} allowed"
            problems.append(FieldProblem(field=field, problem=problem))
    return problems


def _error(description: str, model: type = ErrorBody) -> dict[str, Any]:
    return {"model": model, "description": description}


# statuses any request can get (the body limits run before routing)
_ANY_REQUEST: dict[int | str, dict[str, Any]] = {
    408: _error("the request body was not received in time"),
    413: _error("the request body is over the size limit"),
}
_AUTH: dict[int | str, dict[str, Any]] = {401: _error("missing or wrong bearer token")}
_RETRIEVE: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    400: _error("the body cannot be read (not UTF-8, or nested too deeply)"),
    404: _error("unknown user_id, or this service has no user data"),
    422: _error("the body breaks a rule; every problem names its field", InputErrorBody),
    503: _error("saturated (too many requests in flight) or not ready; see Retry-After"),
    504: _error("the retrieval took longer than the time limit"),
}


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
        token: the bearer token every non-health endpoint requires, in the
            ``Authorization: Bearer`` header only (never in the URL); None
            disables authentication (only sensible on a loopback address).
            Never logged.
        limits: `ServeLimits` (defaults when None).
        initial: an already loaded bundle to serve from the start.
    """
    limits = ServeLimits() if limits is None else limits
    slot = BundleSlot(bundle_loader, initial)
    expected = None if token is None else token.encode()
    bearer = HTTPBearer(auto_error=False)
    executor = ThreadPoolExecutor(limits.max_concurrency, thread_name_prefix="retrieve")
    gate = asyncio.Semaphore(limits.max_concurrency + limits.max_waiting)
    retry_after = {"Retry-After": str(limits.retry_after_s)}

    def _initial_load() -> None:
        try:
            slot.reload()
        except (MultiembedError, RuntimeError) as err:
            log.error("initial bundle refused: %s", err)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if slot.current() is None:  # load in the background: /healthz answers meanwhile
            threading.Thread(target=_initial_load, name="bundle-load", daemon=True).start()
        access_log = logging.getLogger(ACCESS_LOGGER)
        redact = RedactQuery()
        access_log.addFilter(redact)  # a token sent in the URL never reaches the log
        try:
            yield
        finally:
            access_log.removeFilter(redact)
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="multiembed",
        version=multiembed.__version__,
        summary="Multi-embedding retrieval (implicit and explicit interests).",
        lifespan=lifespan,
        responses=_ANY_REQUEST,
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: `docs_page` instead
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.slot = slot
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s)

    @app.exception_handler(RequestValidationError)
    async def refused_body(_: Request, err: RequestValidationError) -> OrjsonResponse:
        return json_response(422, input_error(input_problems(err.errors())))

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

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        openapi_url = request.scope.get("root_path", "") + (app.openapi_url or "")
        return HTMLResponse(docs_page(openapi_url, f"{app.title} API"))

    @app.get("/healthz", tags=["health"], response_model=HealthBody)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=ReadyBody,
        responses={503: _error("no bundle loaded yet", ReadyBody)},
    )
    async def readyz() -> OrjsonResponse:
        """Readiness: 200 once a bundle is loaded, 503 before."""
        bundle = slot.current()
        if bundle is None:
            return json_response(503, {"ready": False, "error": slot.last_error})
        return json_response(200, {"ready": True, "model_version": bundle.model_version})

    @app.get("/version", tags=["health"], response_model=VersionBody)
    async def version() -> dict[str, Any]:
        """The served model version and the library version."""
        bundle = slot.current()
        return {
            "model_version": None if bundle is None else bundle.model_version,
            "library_version": multiembed.__version__,
        }

    @app.post(
        "/retrieve",
        dependencies=[Depends(authenticate)],
        tags=["retrieval"],
        response_model=RetrieveResponse,
        responses=_RETRIEVE,
    )
    async def retrieve_endpoint(body: RetrieveBody) -> OrjsonResponse:
        """Candidates with provenance for a known user, or for a history and followed topics."""
        problems = _check_limits(body, limits)
        if problems:
            return json_response(422, input_error(problems))
        if gate.locked():  # saturated: shed at once rather than queue
            return json_response(503, {"detail": "too many requests in flight"}, retry_after)
        bundle = slot.current()  # this request finishes on this bundle, whatever swaps
        if bundle is None:
            return json_response(503, {"detail": "not ready"}, retry_after)
        request = RetrieveRequest(
            user_id=body.user_id,
            history=tuple(body.history),
            followed_topics=tuple(body.followed_topics),
            budget=min(DEFAULT_BUDGET, limits.max_budget) if body.budget is None else body.budget,
            seed=body.seed,
            include_topics=body.include_topics,
        )
        await gate.acquire()  # does not wait: the gate was open and nothing awaited since
        work = executor.submit(retrieve, bundle, request)
        future = asyncio.wrap_future(work)  # done when the work is done or was cancelled
        future.add_done_callback(lambda _: gate.release())
        try:
            served = await asyncio.wait_for(asyncio.shield(future), limits.timeout_s)
        except TimeoutError:
            work.cancel()  # still waiting for a worker: never run it (running: no effect)
            return json_response(504, {"detail": f"retrieval took over {limits.timeout_s} s"})
        except ServeInputError as err:
            if err.status == 422:
                return json_response(
                    422, input_error([FieldProblem(field=err.field, problem=err.problem)])
                )
            return json_response(err.status, {"detail": str(err)})
        return json_response(200, served.as_json())

    @app.post(
        "/admin/reload",
        dependencies=[Depends(authenticate)],
        tags=["admin"],
        response_model=ReloadBody,
        responses={**_AUTH, 409: _error("the candidate bundle was refused", ReloadRefused)},
    )
    async def reload() -> OrjsonResponse:
        """Load the bundle again (a new model/index version) and swap it in atomically."""
        old = slot.current()
        previous = None if old is None else old.model_version
        try:
            bundle = await run_in_threadpool(slot.reload)
        except MultiembedError as err:
            log.warning("reload refused, still serving %s: %s", previous, err)
            return json_response(409, {"detail": f"refused: {err}", "model_version": previous})
        except RuntimeError as err:
            return json_response(409, {"detail": str(err), "model_version": previous})
        return json_response(200, {"model_version": bundle.model_version, "previous": previous})

    return app
