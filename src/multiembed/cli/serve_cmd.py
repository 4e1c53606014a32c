"""``multiembed serve RUN`` (the HTTP service) and ``multiembed retrieve RUN --user ID``."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tempfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import plain_console
from multiembed.config.sections import MAX_BUDGET
from multiembed.errors import ConfigError

if TYPE_CHECKING:
    from multiembed.serve import ServingBundle

TOKEN_ENV = "MULTIEMBED_API_TOKEN"
_REEXEC = "_MULTIEMBED_SERVE_ENV"

RunArg = Annotated[Path, typer.Argument(help="Run directory written by `multiembed train`.")]
DataOpt = Annotated[
    Path | None,
    typer.Option("--data", help="Prepared data directory (user histories, popularity)."),
]
RunDataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Prepared data directory (user histories, followed topics; default: the "
        "directory the run was trained on, as its manifest records).",
    ),
]
ExplicitOpt = Annotated[
    Path | None,
    typer.Option(
        "--explicit",
        help="A Conditional Retrieval run (model.kind = 'explicit') trained on the same data: "
        "followed topics are then served by its embeddings (the paper's framework).",
    ),
]
FactoryOpt = Annotated[
    str, typer.Option("--index-factory", help="FAISS factory string of the item index.")
]
TowerOpt = Annotated[
    Path | None,
    typer.Option(
        "--user-tower",
        help="The folder `multiembed export-onnx RUN --out DIR` wrote for this run: request "
        "histories are embedded by onnxruntime (about twice as fast as PyTorch for one).",
    ),
]


class Tower(StrEnum):
    """What embeds the histories sent in requests (`multiembed serve --tower`)."""

    auto = "auto"
    onnx = "onnx"
    torch = "torch"


RuntimeOpt = Annotated[
    Tower,
    typer.Option(
        "--tower",
        help="What embeds request histories: onnx, the run's user tower exported to ONNX "
        "when the service loads the run and run by onnxruntime (needs `pip install "
        "'multiembed[onnx]'`); torch, PyTorch; auto, onnx where the packages are installed "
        "and the model exports, else torch. --user-tower gives an export made beforehand.",
    ),
]


def _read_token(token_file: Path | None) -> str | None:
    """The token from `token_file`, else from ``$MULTIEMBED_API_TOKEN``, else None."""
    if token_file is not None:
        where = f"--token-file {token_file}"
        try:
            token = token_file.read_bytes().decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise ConfigError([f"{where}: not UTF-8 text (byte {err.start})"]) from None
        if not token:
            raise ConfigError([f"{where}: the file is empty"])
        # An Authorization header carries printable ASCII: any other token never matches.
        for i, char in enumerate(token):
            if not " " <= char <= "~":
                raise ConfigError([f"{where}: {char!r} at character {i} is not printable ASCII"])
        return token
    return os.environ.get(TOKEN_ENV) or None


_ASCII_INT = re.compile(r"-?[0-9]+")


def _user_id(text: str) -> int | str:
    """`--user` as an int when it is written in ASCII digits, else as the raw string id.

    >>> _user_id("42"), _user_id("²"), _user_id("1_000")
    (42, '²', '1_000')
    """
    if not _ASCII_INT.fullmatch(text):
        return text  # int() would also read "²"-like digits, "1_000" and " 7"
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ConfigError([f"--user = {text}: an integer id must fit in a signed 64-bit integer"])
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _recorded_data_dir(run: Path) -> Path:
    """The data directory `run` was trained on, from its verified manifest."""
    from multiembed.runs import load_run

    recorded = Path(load_run(run).manifest["data"]["dir"])
    if not recorded.is_dir():
        raise ConfigError(
            [
                f"--data: not given, and the data directory the run {run} was trained on, "
                f"{recorded}, does not exist; pass --data with the prepared data directory"
            ]
        )
    return recorded


@friendly_errors
def serve_command(
    run: RunArg,
    data: DataOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help=f"File holding the bearer token (else ${TOKEN_ENV})."),
    ] = None,
    index_factory: FactoryOpt = "HNSW32",
    explicit: ExplicitOpt = None,
    tower: RuntimeOpt = Tower.auto,
    user_tower: TowerOpt = None,
    max_concurrency: Annotated[
        int, typer.Option(help="Requests retrieved at once (one FAISS thread each).")
    ] = max(1, os.cpu_count() or 1),
    max_waiting: Annotated[
        int,
        typer.Option(
            min=0, help="Requests that may wait for a worker beyond those; one more gets 503."
        ),
    ] = 16,
) -> None:
    """Serve retrieval over HTTP: POST /retrieve, GET /healthz, /readyz, /version."""
    loaded_early = any(m in sys.modules for m in ("numpy", "faiss", "torch"))
    # importing the package sets the serving thread settings, before it loads NumPy/FAISS
    from multiembed.serve import ServeLimits, create_app, server_options

    if loaded_early and os.environ.get(_REEXEC) != "1":
        # NumPy or FAISS read their thread settings before they were set (the command
        # was called from a process that had loaded them): start afresh with them set
        os.environ[_REEXEC] = "1"
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    import uvicorn

    token = _read_token(token_file)
    if token is None and not _is_loopback(host):
        raise ConfigError(
            [f"--host {host}: a non-loopback address needs --token-file or ${TOKEN_ENV}"]
        )
    loader = _bundle_loader(run, data, index_factory, explicit, tower, user_tower)
    with plain_console.status("loading the run and its index"):
        bundle = loader()
    limits = ServeLimits(max_concurrency=max_concurrency, max_waiting=max_waiting)
    app = create_app(loader, token=token, limits=limits, initial=bundle)
    auth = "bearer token" if token is not None else "no authentication (loopback only)"
    runtime = "onnxruntime" if bundle.user_tower is not None else "PyTorch"
    plain_console.print(
        f"serving {bundle.model_version} on http://{host}:{port} ({auth}; request "
        f"histories embedded by {runtime})"
    )
    # uvloop's event loop and httptools' parser (both dependencies): a request's
    # HTTP handling costs a fraction of asyncio's and h11's pure-Python paths;
    # server_options adds the header and keep-alive timeouts to httptools
    uvicorn.run(app, host=host, port=port, log_level="info", **server_options(limits))


def _bundle_loader(
    run: Path,
    data: Path | None,
    index_factory: str,
    explicit: Path | None,
    tower: Tower,
    user_tower: Path | None,
) -> Callable[[], ServingBundle]:
    """What loads (and on ``/admin/reload`` reloads) the bundle: with ``--tower onnx`` or
    ``auto`` its model's towers are exported afresh each time, into a folder that lives
    only until onnxruntime has read the graph, so a retrained run is never served with
    an old graph."""
    from multiembed.serve import build_bundle, with_user_tower

    def load() -> ServingBundle:
        bundle = build_bundle(
            run, data, index_factory, explicit_run=explicit, user_tower=user_tower
        )
        if user_tower is not None or tower is Tower.torch:
            return bundle
        with tempfile.TemporaryDirectory(prefix="multiembed-onnx-") as folder:
            if not _export_tower(bundle, Path(folder), required=tower is Tower.onnx):
                return bundle
            return with_user_tower(bundle, Path(folder))

    return load


def _export_tower(bundle: ServingBundle, folder: Path, *, required: bool) -> bool:
    """Export the bundle's user tower to `folder` (`multiembed.onnx.export_model`); False, with
    a line saying why, when it cannot be and `required` is False."""
    from multiembed.onnx import OnnxExportError, export_model

    try:
        export_model(
            bundle.model,
            folder,
            name=bundle.model_version,
            seq_len=bundle.seq_len,
            n_items=bundle.n_items,
            model_version=bundle.model_version,
            item_tower=False,  # the service embeds items with its index
        )
    except OnnxExportError as err:
        if required:
            raise
        plain_console.print(f"request histories: embedded by PyTorch ({err})")
        return False
    return True


@friendly_errors
def retrieve_command(
    run: RunArg,
    user: Annotated[str, typer.Option("--user", help="Raw user id of the data directory.")],
    data: RunDataOpt = None,
    budget: Annotated[
        int, typer.Option(min=1, max=MAX_BUDGET, help="Candidates to retrieve.")
    ] = 50,
    index_factory: FactoryOpt = "HNSW32",
    explicit: ExplicitOpt = None,
) -> None:
    """Print one user's candidates with provenance: a case study in the terminal."""
    from multiembed.serve import RetrieveRequest, build_bundle, retrieve

    user_id = _user_id(user)
    if data is None:
        data = _recorded_data_dir(run)
        plain_console.print(f"data: {data} (recorded in the run)")
    with plain_console.status("loading the run and its index"):
        bundle = build_bundle(run, data, index_factory, explicit_run=explicit)
    served = retrieve(bundle, RetrieveRequest(user_id=user_id, budget=budget, include_topics=True))
    lists = Table(title=f"user {user}: embeddings and budgets ({bundle.model_version})")
    for col in ("embedding", "budget", "hits", "off-topic"):
        lists.add_column(col, justify="left" if col == "embedding" else "right")
    for source, b, found, filtered in served.lists:
        lists.add_row(str(source), str(b), str(found), str(filtered))
    plain_console.print(lists)
    table = Table(title=f"{len(served)} candidates, merged round-robin")
    for col in ("#", "item", "embedding", "rank", "score", "also found by", "item topics"):
        table.add_column(col, justify="right" if col in ("#", "rank", "score") else "left")
    for n, c in enumerate(served.rows()):
        also = ", ".join(f"{s} #{r}" for s, r, _ in c.found_by if s != c.source)
        ids = (str(n), str(c.item_id), str(c.source), str(c.rank))
        table.add_row(*ids, f"{c.score:.4f}", also, ", ".join(c.topics))
    plain_console.print(table)
