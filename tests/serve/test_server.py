"""The service under uvicorn with `server_options`: slow clients cut off, no token in logs.

A real server on a loopback port, driven with raw sockets so that a client can
be as slow as a hostile one: headers trickled a byte at a time, a body that
stops half way, an idle kept-alive connection.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from multiembed.errors import ConfigError
from multiembed.serve import ServeLimits, ServingBundle, create_app, server_options
from tests.serve.live_server import live_server

TOKEN = "s3cret-token"
LIMITS = ServeLimits(header_timeout_s=0.4, body_timeout_s=0.4, keep_alive_s=0.4)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class Running:
    port: int
    access_log: list[str]

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return s


@pytest.fixture(scope="module")
def running(bundle: ServingBundle) -> Iterator[Running]:
    app = create_app(lambda: bundle, token=TOKEN, limits=LIMITS, initial=bundle)
    access = logging.getLogger("uvicorn.access")
    lines = _Lines()
    level = access.level
    access.addHandler(lines)
    access.setLevel(logging.INFO)
    try:
        with live_server(app, log_config=None, **server_options(LIMITS)) as port:
            yield Running(port, lines.lines)
    finally:
        access.removeHandler(lines)
        access.setLevel(level)


def _closed_after(s: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    t0 = time.perf_counter()
    received = b""
    while chunk := s.recv(65536):
        received += chunk
    return received, time.perf_counter() - t0


def test_server_options_use_httptools_with_a_header_timeout() -> None:
    options = server_options(LIMITS)
    assert issubclass(options["http"], HttpToolsProtocol)
    assert options["timeout_keep_alive"] == 0.4
    assert options["loop"] == "uvloop"


def test_headers_trickled_slower_than_the_timeout_are_cut_off(running: Running) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
    with running.connect() as s:
        t0 = time.perf_counter()
        sent = _trickle(s, request)
        received, _ = _closed_after(s)
        elapsed = time.perf_counter() - t0
    assert received == b""
    assert sent < len(request)
    assert 0.35 <= elapsed < 3


def _trickle(s: socket.socket, request: bytes) -> int:
    """Send `request` a byte every 50 ms (never idle, never done) until the server hangs up."""
    sent = 0
    try:
        for byte in request:
            s.sendall(bytes([byte]))
            sent += 1
            time.sleep(0.05)
    except OSError:  # the server closed the connection under us
        pass
    return sent


def test_a_kept_alive_connection_cannot_trickle_its_next_request(running: Running) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with running.connect() as s:
        s.sendall(request)
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        t0 = time.perf_counter()
        sent = _trickle(s, request[:-2] + b"X-Slow: " + b"a" * 40 + b"\r\n\r\n")
        received, _ = _closed_after(s)
        elapsed = time.perf_counter() - t0
    assert received == b""
    assert sent < len(request) + 50
    assert 0.35 <= elapsed < 3


def test_a_connection_that_sends_nothing_is_closed(running: Running) -> None:
    with running.connect() as s:
        received, elapsed = _closed_after(s)
    assert received == b""
    assert 0.35 <= elapsed < 3


def test_a_body_that_stops_half_way_is_a_408(running: Running) -> None:
    head = (
        "POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n"
    )
    with running.connect() as s:
        s.sendall(head.encode() + b'{"budget"')
        received, elapsed = _closed_after(s)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"request body not received within 0.4 s" in received
    assert elapsed < 3


def test_an_idle_kept_alive_connection_is_closed(running: Running) -> None:
    with running.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received, elapsed = _closed_after(s)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(b'{"status":"ok"}')
    assert 0.35 <= elapsed < 3


def test_a_token_in_the_url_is_refused_and_kept_out_of_the_access_log(running: Running) -> None:
    request = (
        f"POST /retrieve?token={TOKEN}&access_token={TOKEN} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    with running.connect() as s:
        s.sendall(request.encode())
        received, _ = _closed_after(s)
    assert received.startswith(b"HTTP/1.1 401 ")
    deadline = time.time() + 2
    while not any("/retrieve" in line for line in running.access_log) and time.time() < deadline:
        time.sleep(0.02)
    lines = [line for line in running.access_log if "/retrieve" in line]
    assert lines, running.access_log
    assert all(TOKEN not in line for line in running.access_log)
    assert '"POST /retrieve?<redacted> HTTP/1.1" 401' in lines[-1]


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (0, "must be finite and > 0"),
        (float("nan"), "must be finite and > 0"),
        (float("inf"), "must be finite and > 0"),
        ("5", "must be a number of seconds"),
        (True, "must be a number of seconds"),
    ],
)
def test_connection_timeouts_are_validated(value: object, rule: str) -> None:
    for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s", "timeout_s"):
        with pytest.raises(ConfigError) as err:
            ServeLimits(**{name: value})  # type: ignore[arg-type]
        assert err.value.problems == [f"serve.{name} = {value!r}: {rule}"]


@pytest.mark.parametrize("value", [-1, True, 1.5, "2"])
def test_max_waiting_is_validated(value: object) -> None:
    with pytest.raises(ConfigError) as err:
        ServeLimits(max_waiting=value)  # type: ignore[arg-type]
    assert err.value.problems == [f"serve.max_waiting = {value!r}: must be an int >= 0"]
    assert ServeLimits(max_waiting=0).max_waiting == 0
