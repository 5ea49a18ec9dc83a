"""The emulator on real HTTP (stdlib ThreadingHTTPServer: one thread per connection, keep-alive).

Serves the data-api paths, the api.x.com OAuth paths and `/_emulator/*` admin routes on one port.
"""

from __future__ import annotations

import contextlib
import gzip
import html
import json
import logging
import socket
import struct
import threading
from collections.abc import Iterable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from xengage.api_client.catalog import Endpoint

from .clock import Clock
from .faults import Fault, FaultConfig
from .ratelimit import DEFAULT_WINDOW_SECONDS, PerMinuteLimiter
from .service import DataReply, EmulatorService, RequestLogEntry
from .world import World, default_world

logger = logging.getLogger(__name__)

_DATA_PATHS = {endpoint.path: endpoint for endpoint in Endpoint}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a client that keeps a connection open
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: EmulatorService, stopping: threading.Event) -> None:
        self.service = service
        self.stopping = stopping
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_open_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "xengage-emulator/1.0"
    timeout = 120  # idle keep-alive connections are dropped eventually
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    # --- routing ---------------------------------------------------------------------------------------
    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except Exception as exc:  # an emulator bug must not look like an injected connection reset
            logger.exception("emulator failed on %s", getattr(self, "path", "?"))
            self.close_connection = True
            self._send_json(500, {"errors": [f"emulator internal error: {type(exc).__name__}"]})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if path in _DATA_PATHS:
            self._data_call(_DATA_PATHS[path], body)
        elif path == "/oauth/request_token":
            self._oauth1_reply(*self.server.service.oauth.request_token(self._uri(), body.decode(), self._headers()))
        elif path == "/oauth/access_token":
            self._oauth1_reply(*self.server.service.oauth.access_token(self._uri(), body.decode(), self._headers()))
        elif path == "/oauth2/token":
            status, answer = self.server.service.oauth.app_only_token(self._uri(), body.decode(), self._headers())
            self._send_json(status, answer)
        elif path.startswith("/_emulator/"):
            self._admin_post(path, body)
        else:
            self._send_json(404, {"errors": [f"No such endpoint: POST {path}"]})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path in ("/oauth/authorize", "/oauth/authenticate"):
            self._authorize(parse_qs(parts.query))
        elif parts.path == "/2/users/me":
            self._deliver(self.server.service.users_me(self._uri(), self._headers()))
        elif parts.path == "/_emulator/log":
            self._send_json(200, {"requests": [entry.to_dict() for entry in self.server.service.log]})
        elif parts.path == "/_emulator/world":
            self._send_json(200, _world_summary(self.server.service))
        elif parts.path == "/_emulator/credentials":
            self._send_json(200, self.server.service.world.credential_state().to_dict())
        elif parts.path == "/_emulator/limit":
            self._send_json(200, _limit_summary(self.server.service.limiter))
        elif parts.path == "/_emulator/health":
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"errors": [f"No such endpoint: GET {parts.path}"]})

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path == "/_emulator/log":
            self.server.service.clear_log()
            self._send_json(200, {"cleared": True})
        else:
            self._send_json(404, {"errors": [f"No such endpoint: DELETE {self.path}"]})

    # --- data endpoints ----------------------------------------------------------------------------------
    def _data_call(self, endpoint: Endpoint, body: bytes) -> None:
        self._deliver(self.server.service.data_call(endpoint, self._uri(), self._headers(), body))

    def _deliver(self, reply: DataReply) -> None:
        """Send a planned reply of a call to X, after the configured latency and any hang, or reset instead."""
        service = self.server.service
        latency = service.faults.config.latency_ms / 1000.0
        if latency and self.server.stopping.wait(latency):
            return
        if reply.fault is Fault.RESET:
            self._reset_connection()
            return
        if reply.fault is Fault.TIMEOUT and self.server.stopping.wait(service.faults.config.hang_seconds):
            return
        self._send_data_reply(reply)

    def _send_data_reply(self, reply: DataReply) -> None:
        payload = json.dumps(reply.body, separators=(",", ":")).encode()
        status = reply.status
        if reply.fault is Fault.MALFORMED:
            payload, status = payload[: max(1, len(payload) // 2)], 200
        self._send(status, payload, "application/json; charset=utf-8", reply.headers)

    def _reset_connection(self) -> None:
        """Close with RST and no response, like a dropped connection mid-request."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    # --- OAuth -----------------------------------------------------------------------------------------
    def _oauth1_reply(self, headers: dict[str, str], body: str | None, status: int) -> None:
        if body is None:
            self._send_json(status, {"errors": ["Could not authenticate you"]})
            return
        self._send(status, body.encode(), headers.get("Content-Type", "application/x-www-form-urlencoded"))

    def _authorize(self, query: dict[str, list[str]]) -> None:
        service = self.server.service
        request_token = (query.get("oauth_token") or [""])[0]
        user_id = (query.get("as_user") or [service.world.authorize_as or ""])[0]
        if not request_token:
            self._send_json(400, {"errors": ["oauth_token is required"]})
            return
        headers, body, status = service.oauth.authorize(self._uri(), request_token, user_id)
        if status == 302:
            self._send(302, b"", "text/plain", {"Location": headers["Location"]})
        elif status == 200 and body is not None:
            verifier = html.escape(parse_qs(body).get("oauth_verifier", [""])[0])
            page = f"<html><body><p>Enter this PIN in the app: <code id='oauth_pin'>{verifier}</code></p></body></html>"
            self._send(200, page.encode(), "text/html; charset=utf-8")
        else:
            self._send_json(status, {"errors": [body or "authorization failed"]})

    # --- admin -----------------------------------------------------------------------------------------
    def _admin_post(self, path: str, body: bytes) -> None:
        service = self.server.service
        try:
            data = json.loads(body or b"null")
            if path == "/_emulator/faults":
                service.faults.configure(FaultConfig.from_mapping(data or {}))
                self._send_json(200, {"faults": service.faults.config.to_dict()})
            elif path == "/_emulator/script":
                faults = data.get("faults") if isinstance(data, dict) else data
                if not isinstance(faults, list):
                    raise ValueError('expected {"faults": ["429", "503", "reset", ...]}')
                service.faults.script(faults)
                self._send_json(200, {"pending": service.faults.pending_script()})
            elif path == "/_emulator/limit":
                self._send_json(200, _configure_limit(service.limiter, data))
            elif path == "/_emulator/credentials":
                _change_credentials(service.world, data)
                self._send_json(200, service.world.credential_state().to_dict())
            elif path == "/_emulator/clock":
                moment = data.get("now") if isinstance(data, dict) else None
                service.clock.set(datetime.fromisoformat(moment) if moment else None)
                self._send_json(200, {"now": service.clock.now().isoformat()})
            else:
                self._send_json(404, {"errors": [f"No such admin route: {path}"]})
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"errors": [str(exc)]})

    # --- plumbing --------------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _headers(self) -> dict[str, str]:
        return dict(self.headers.items())

    def _uri(self) -> str:
        """The URL the client signed: scheme + the Host it sent + path and query."""
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return f"http://{host}{self.path}"

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body, separators=(",", ":")).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        if "gzip" in (self.headers.get("Accept-Encoding") or "").lower() and payload:
            payload = gzip.compress(payload, compresslevel=5)
            headers = {**(headers or {}), "Content-Encoding": "gzip"}
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. its timeout fired during a hang)


_LIMIT_OPTIONS = ("per_minute_limit", "window_seconds")
_CREDENTIAL_COMMANDS = (
    '{"revoke_user": "<user_id>"}, {"rotate": "bearer_token"}, {"rotate": "consumer_secret"} or {"restore": true}'
)


def _configure_limit(limiter: PerMinuteLimiter, data: Any) -> dict[str, Any]:
    """POST /_emulator/limit: a key left out keeps its value; a bare number or null is the limit alone."""
    options = data if isinstance(data, dict) else {"per_minute_limit": data}
    unknown = sorted(set(options) - set(_LIMIT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown limit option(s): {', '.join(unknown)}")
    limit = limiter.limit
    if "per_minute_limit" in options:
        raw = options["per_minute_limit"]
        limit = None if raw is None else int(raw)
    window = limiter.window_seconds
    if "window_seconds" in options:
        raw_window = options["window_seconds"]
        if isinstance(raw_window, bool) or not isinstance(raw_window, (int, float)):
            raise ValueError(f"window_seconds must be a number > 0, got {raw_window!r}")
        window = float(raw_window)
    limiter.configure(limit, window)
    return _limit_summary(limiter)


def _limit_summary(limiter: PerMinuteLimiter) -> dict[str, Any]:
    return {"per_minute_limit": limiter.limit, "window_seconds": limiter.window_seconds}


def _change_credentials(world: World, data: Any) -> None:
    """POST /_emulator/credentials: exactly one command; the answer (built by the caller) holds no secret."""
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"expected one of {_CREDENTIAL_COMMANDS}")
    ((command, value),) = data.items()
    if command == "revoke_user":
        if not isinstance(value, str) or value not in world.users:
            raise ValueError(f"unknown user {value!r}")
        world.revoke_user_tokens(value)
    elif command == "rotate" and value == "bearer_token":
        world.rotate_bearer_token()
    elif command == "rotate" and value == "consumer_secret":
        world.rotate_consumer_secret()
    elif command == "rotate":
        raise ValueError(f'rotate must be "bearer_token" or "consumer_secret", got {value!r}')
    elif command == "restore" and value is True:
        world.restore_credentials()
    elif command == "restore":
        raise ValueError(f"restore must be true, got {value!r}")
    else:
        raise ValueError(f"unknown credentials command {command!r}: expected one of {_CREDENTIAL_COMMANDS}")


def _world_summary(service: EmulatorService) -> dict[str, Any]:
    """Users, Posts and what credentials changed, without any secret: which ids exist for a local stack."""
    world = service.world
    return {
        "now": service.clock.now().isoformat(),
        "authorize_as": world.authorize_as,
        "credentials": world.credential_state().to_dict(),
        "users": [{"user_id": u.user_id, "screen_name": u.screen_name} for u in world.users.values()],
        "posts": [
            {
                "tweet_id": p.tweet_id,
                "owner_id": p.owner_id,
                "state": p.state.value,
                "has_video": p.has_video,
                "created_at": p.created_at.isoformat(),
            }
            for p in world.posts.values()
        ],
    }


class EmulatorServer:
    """The Engagement API emulator on 127.0.0.1. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        world: World | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        per_minute_limit: int | None = None,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        faults: FaultConfig | None = None,
        now: datetime | None = None,
    ) -> None:
        self._address = (host, port)
        self._service = EmulatorService(
            world if world is not None else default_world(now),
            per_minute_limit=per_minute_limit,
            window_seconds=window_seconds,
            faults=faults,
            clock=Clock(now),
        )
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self._address, self._service, self._stopping)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="engagement-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in latency or hang faults
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what tests and the local stack use ------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return f"http://{self._address[0]}:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def world(self) -> World:
        return self._service.world

    @property
    def service(self) -> EmulatorService:
        return self._service

    @property
    def clock(self) -> Clock:
        return self._service.clock

    def set_now(self, moment: datetime | None) -> None:
        """Pin the clock (age rules, windows, rate-limit minutes); None returns to real time."""
        self._service.clock.set(moment)

    def set_faults(self, config: FaultConfig) -> None:
        self._service.faults.configure(config)

    def script_faults(self, faults: Iterable[str]) -> None:
        self._service.faults.script(faults)

    def reset_faults(self) -> None:
        """No fault any more: no scripted answers left, no random faults (the limit and the clock are kept)."""
        self._service.faults.clear_script()
        self._service.faults.configure(FaultConfig())

    def set_per_minute_limit(self, limit: int | None) -> None:
        self._service.limiter.set_limit(limit)

    def set_window_seconds(self, window_seconds: float) -> None:
        """Shorten (or restore, 60.0) the rate-limit "minute"; windows align to multiples of it since the epoch."""
        self._service.limiter.set_window_seconds(window_seconds)

    # --- credentials: what happens when tokens stop working ---------------------------------------------
    def revoke_user_tokens(self, user_id: str) -> int:
        """Every access token of the user answers 401 "Access token not found"; later grants work.

        Returns how many tokens were revoked; an unknown user is a KeyError.
        """
        return self._service.world.revoke_user_tokens(user_id)

    def rotate_bearer_token(self) -> str:
        """A new bearer token for the app (also what /oauth2/token issues from now on); the old one gets 401."""
        return self._service.world.rotate_bearer_token()

    def rotate_consumer_secret(self) -> str:
        """A new consumer secret: OAuth 1.0a signed with the old one gets 401, /oauth2/token with it 403."""
        return self._service.world.rotate_consumer_secret()

    def restore_credentials(self) -> None:
        """Undo every revocation and rotation."""
        self._service.world.restore_credentials()

    @property
    def log(self) -> list[RequestLogEntry]:
        return self._service.log

    def clear_log(self) -> None:
        self._service.clear_log()
