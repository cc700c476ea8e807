"""Real S3 and HTTP servers on 127.0.0.1 for tests, with faults that tests can inject.

`S3Server` runs moto's S3 API behind a WSGI layer and `HTTPFileServer`
serves a folder with range requests. Both consult a `FaultPlan` before
responding, so a test can make the next requests for a path fail with an
HTTP status or lose their connection part-way through the body. The
fixtures at the end start the servers, point the AWS environment at them
with fake credentials, and stop them afterwards. `loopback_only` makes any
connection to an address other than the loopback one fail the test.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.server
import logging
import os
import re
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from binconv.storage_options import StorageOptions

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass
class Fault:
    """A fault for the next `times` requests whose path ends with `path_suffix`.

    Attributes:
        path_suffix: End of the request path (without the query) that triggers the fault.
        times: Number of requests still to fail.
        status: HTTP status to respond with instead of the content, or None.
        cut_after: Number of body bytes sent before the connection is shut
            down, or None. The response headers still announce the full size.
        method: HTTP method that triggers the fault.
    """

    path_suffix: str
    times: int
    status: int | None = None
    cut_after: int | None = None
    method: str = "GET"


@dataclass(frozen=True)
class Request:
    """A request a test server received: method, path, query and Range header."""

    method: str
    path: str
    range: str | None
    query: str = ""


@dataclass
class FaultPlan:
    """Faults to inject and a log of the requests received, shared by server threads."""

    faults: list[Fault] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path_suffix: str, status: int = 500, times: int = 1) -> None:
        """Respond to the next `times` GETs of `path_suffix` with `status` and no content."""
        with self._lock:
            self.faults.append(Fault(path_suffix, times, status=status))

    def cut(self, path_suffix: str, after_bytes: int, times: int = 1) -> None:
        """Shut the connection down after `after_bytes` body bytes of the next `times` GETs."""
        with self._lock:
            self.faults.append(Fault(path_suffix, times, cut_after=after_bytes))

    def record(
        self, method: str, path: str, range_header: str | None, query: str = ""
    ) -> Fault | None:
        """Log a request and return the fault to inject into it, if any."""
        with self._lock:
            self.requests.append(Request(method, path, range_header, query))
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and path.endswith(fault.path_suffix):
                    fault.times -= 1
                    return fault
        return None

    def reset(self) -> None:
        """Drop all planned faults and the request log."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def requests_for(self, path_suffix: str) -> list[Request]:
        """Return the logged GET requests whose path ends with `path_suffix`."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.path.endswith(path_suffix)]


class _TracksConnections:
    """Request handler mixin that registers its connection with the server while it is open.

    `stop_server` shuts these connections down, so that a stopped server also
    drops the keep-alive connections a client would otherwise reuse.
    """

    server: Any
    connection: socket.socket

    def setup(self) -> None:
        super().setup()  # type: ignore[misc]
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        super().finish()  # type: ignore[misc]


def track_connections(server: Any) -> None:
    """Give `server` the connection registry that `_TracksConnections` handlers use."""
    server.open_connections = set()
    server.connections_lock = threading.Lock()


def stop_server(server: Any, thread: threading.Thread) -> None:
    """Stop accepting, close the listening socket and shut down every open connection."""
    server.shutdown()
    server.server_close()
    with server.connections_lock:
        for connection in server.open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
    thread.join(timeout=10)


class _MotoHandler(_TracksConnections, MotoRequestHandler):
    """moto's request handler, with its connection registered for `stop_server`."""


class _S3FaultLayer:
    """WSGI middleware that injects the faults of a `FaultPlan` in front of moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]], plan: FaultPlan) -> None:
        self._app = app
        self._plan = plan

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        fault = self._plan.record(
            environ["REQUEST_METHOD"],
            environ.get("PATH_INFO", ""),
            environ.get("HTTP_RANGE"),
            environ.get("QUERY_STRING", ""),
        )
        if fault is None:
            return self._app(environ, start_response)
        if fault.status is not None:
            return _s3_error(fault.status, start_response)
        assert fault.cut_after is not None
        body = self._app(environ, start_response)
        return _cut_body(body, fault.cut_after, environ["werkzeug.socket"])


def _s3_error(status: int, start_response: Callable[..., Any]) -> list[bytes]:
    code = "SlowDown" if status == 503 else "InternalError"
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>fault injected by the test server</Message></Error>"
    ).encode()
    reason = http.HTTPStatus(status).phrase
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _cut_body(body: Iterable[bytes], limit: int, sock: socket.socket) -> Iterator[bytes]:
    sent = 0
    for chunk in body:
        part = chunk[: limit - sent]
        if part:
            yield part
            sent += len(part)
        if sent >= limit:
            break
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class S3Server:
    """moto's S3 API on 127.0.0.1 at a free port, with fault injection."""

    def __init__(self) -> None:
        self.plan = FaultPlan()
        app = _S3FaultLayer(DomainDispatcherApplication(create_backend_app), self.plan)
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_MotoHandler
        )
        track_connections(self._server)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._stopped = False

    @property
    def endpoint_url(self) -> str:
        """The server's base URL, `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def options(self, **overrides: Any) -> StorageOptions:
        """Return storage options with this server's endpoint and short retry waits."""
        settings: dict[str, Any] = {
            "s3_endpoint_url": self.endpoint_url,
            "retry_delay_s": 0.01,
            "max_retry_delay_s": 0.05,
            "timeout_s": 5.0,
        }
        settings.update(overrides)
        return StorageOptions(**settings)

    def start(self) -> None:
        """Serve requests in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket, so new connections are refused."""
        if self._stopped:
            return
        self._stopped = True
        stop_server(self._server, self._thread)


class _FileHandler(_TracksConnections, http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP/1.1 keep-alive and single-range requests, and injects faults."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes. With Nagle's algorithm on,
    # each response would wait for the client's delayed ACK (about 40 ms on Linux).
    disable_nagle_algorithm = True
    plan: FaultPlan
    # False makes the server ignore Range headers, as Python 3.11's http.server does.
    ranges = True

    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger(__name__).debug("http server: " + format, *args)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, send_body: bool) -> None:
        path = urllib.parse.urlsplit(self.path).path
        fault = self.plan.record(self.command, path, self.headers.get("Range"))
        if fault is not None and fault.status is not None:
            self.send_error(fault.status, "fault injected by the test server")
            return
        local = Path(self.translate_path(self.path))
        if not local.is_file():
            if send_body:
                super().do_GET()
            else:
                super().do_HEAD()
            return
        data = local.read_bytes()
        range_header = self.headers.get("Range") if self.ranges else None
        start, end = _parse_range(range_header, len(data))
        if start is None:
            self.send_error(416, "range not satisfiable")
            return
        body = data[start:end]
        self._send_headers(len(data), start, end, local, partial=range_header is not None)
        if not send_body:
            return
        if fault is not None and fault.cut_after is not None:
            self.wfile.write(body[: fault.cut_after])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def _send_headers(self, size: int, start: int, end: int, local: Path, partial: bool) -> None:
        self.send_response(206 if partial else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        modified = email.utils.formatdate(local.stat().st_mtime, usegmt=True)
        self.send_header("Last-Modified", modified)
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()


def _parse_range(header: str | None, size: int) -> tuple[int | None, int]:
    """Return the half-open byte range [start, end) a `Range: bytes=a-b` header requests."""
    if header is None:
        return 0, size
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None:
        return None, 0
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        return max(size - int(last), 0), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size:
        return None, 0
    return start, end


class HTTPFileServer:
    """Serves the files under `root` on 127.0.0.1 at a free port, with fault injection.

    Args:
        root: Folder to serve.
        ranges: Whether to respond to Range headers with 206 and the requested bytes.
    """

    def __init__(self, root: Path, ranges: bool = True) -> None:
        self.plan = FaultPlan()
        self.root = root
        handler = type("Handler", (_FileHandler,), {"plan": self.plan, "ranges": ranges})
        factory = _bind_handler(handler, str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), factory)
        self._server.daemon_threads = True
        track_connections(self._server)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._stopped = False

    @property
    def url(self) -> str:
        """The URL of `root`, `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        """Serve requests in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket, so new connections are refused."""
        if self._stopped:
            return
        self._stopped = True
        stop_server(self._server, self._thread)


def _bind_handler(handler: type[_FileHandler], directory: str) -> Callable[..., _FileHandler]:
    def factory(*args: Any, **kwargs: Any) -> _FileHandler:
        return handler(*args, directory=directory, **kwargs)

    return factory


def _guard_address(host: Any) -> None:
    if isinstance(host, str) and host not in LOOPBACK_HOSTS:
        pytest.fail(f"a test tried to reach {host}; tests may only connect to 127.0.0.1")


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test when anything resolves or connects to a host other than the loopback one."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _guard_address(host.decode() if isinstance(host, bytes) else host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple):
            _guard_address(address[0])
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple):
            _guard_address(address[0])
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


def _set_aws_environment(monkeypatch: pytest.MonkeyPatch, aws_dir: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name in ("config", "credentials"):
        (aws_dir / name).write_text("")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "binconv-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "binconv-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_dir / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_dir / "credentials"))


@pytest.fixture(scope="session")
def _s3_server_for_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    # One server for the whole session: each new S3 client costs about half a
    # second (botocore loads its service model), and fsspec caches clients by
    # their arguments, so a fixed endpoint lets tests share them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    aws_dir = tmp_path_factory.mktemp("aws-config")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _set_aws_environment(monkeypatch, aws_dir)
        server = S3Server()
        server.start()
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        yield server
        server.stop()


@pytest.fixture
def s3_server(loopback_only: None, _s3_server_for_session: S3Server) -> S3Server:
    """The session's running `S3Server`, with no faults planned and an empty request log.

    While it runs, the AWS environment contains fake credentials, no
    configuration from the home folder, and `AWS_ENDPOINT_URL` set to it.
    """
    _s3_server_for_session.plan.reset()
    return _s3_server_for_session


@pytest.fixture
def aws_environment(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the AWS config files at a new folder and return it, for tests that write profiles."""
    aws_dir = tmp_path / "aws-config"
    aws_dir.mkdir()
    _set_aws_environment(monkeypatch, aws_dir)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    return aws_dir


@pytest.fixture
def stoppable_s3_server(s3_server: S3Server) -> Iterator[S3Server]:
    """A separate `S3Server` that the test may stop; it shares moto's buckets with `s3_server`."""
    server = S3Server()
    server.start()
    yield server
    server.stop()
    # fsspec caches clients by their arguments; a later server may get this
    # port, and must not be handed a client made for this one.
    fsspec.get_filesystem_class("s3").clear_instance_cache()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on `s3_server`; returns its `s3://NAME` URL."""
    name = f"binconv-test-{uuid.uuid4().hex[:12]}"
    s3 = fsspec.filesystem("s3", endpoint_url=s3_server.endpoint_url)
    s3.mkdir(name)
    return f"s3://{name}"


@pytest.fixture
def http_server(loopback_only: None, tmp_path: Path) -> Iterator[HTTPFileServer]:
    """A running `HTTPFileServer` for a new, empty folder; stopped after the test."""
    root = tmp_path / "http-root"
    root.mkdir()
    server = HTTPFileServer(root)
    server.start()
    yield server
    server.stop()
    fsspec.get_filesystem_class("http").clear_instance_cache()
