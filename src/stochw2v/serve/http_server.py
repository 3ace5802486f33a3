"""The HTTP server around the app: uvicorn with the guards a public port needs.

uvicorn alone holds every connection it accepts for as long as the client likes, so 1,100 idle
sockets exhaust the default 1,024 open files and the server stops answering anyone. Here:

* the open-file limit is raised at start (to the hard limit) and connections are capped below it;
  a connection over the cap evicts the oldest idle one (connected, no request in progress), and
  when every connection is busy it gets an immediate 503;
* a connection must send its request headers within `header_timeout` seconds of connecting (or of
  its previous answer), so slow-header clients cannot pin a socket (the app times out slow bodies);
* an error in the accept loop (out of file descriptors) is logged once per interval, not once per retry;
* the listening socket is bound before anything else starts, so a port it cannot use is one line.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import math
import resource
import socket
import time

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import Stochw2vError

LOG = logging.getLogger("stochw2v.serve")
FILES_KEPT_BACK = 192  # open files left for one accept batch, the model, logs and the listening socket
ACCEPT_BATCH = 64  # connections asyncio accepts per wake-up (uvicorn's backlog), before the cap closes extras
ACCEPT_ERROR_INTERVAL = 30.0  # seconds between two log lines for the same accept-loop error
LISTEN_BACKLOG = 2048
_OVER_CAP_BODY = b'{"error": "the server holds its maximum number of connections", "status": 503}'
OVER_CAP_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                     b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
                     + str(len(_OVER_CAP_BODY)).encode() + b"\r\n\r\n" + _OVER_CAP_BODY)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0: any free port), or one line saying why it cannot be had."""
    if not 0 <= port <= 65535:
        raise Stochw2vError(f"--port {port}: a TCP port is between 1 and 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise Stochw2vError(f"--host {host}: not an address this machine can resolve ({error.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as error:
        sock.close()
        hint = " (ports below 1024 need root)" if error.errno == errno.EACCES and port < 1024 else \
            " (another program listens there)" if error.errno == errno.EADDRINUSE else ""
        raise Stochw2vError(f"cannot listen on {host}:{port}: {error.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock


def connection_cap(wanted: int) -> int:
    """Raise this process's open-file limit as far as allowed and return how many connections fit under it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + FILES_KEPT_BACK
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    room = wanted if soft == resource.RLIM_INFINITY else soft - FILES_KEPT_BACK
    cap = max(1, min(wanted, room))
    if cap < wanted:
        LOG.warning("the open-file limit (%s) allows %d connections, not %d", soft, cap, wanted)
    return cap


def guarded_protocol(max_connections: int, header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a connection cap (oldest idle evicted first) and a header deadline."""

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.idle_since: float | None = time.monotonic()
            self.header_deadline: asyncio.TimerHandle | None = None
            if len(self.connections) > max_connections and not self._evict_oldest_idle():
                transport.write(OVER_CAP_RESPONSE)
                transport.close()
                return
            self._arm_header_deadline()

        def _evict_oldest_idle(self) -> bool:
            idle = [c for c in self.connections if c is not self and getattr(c, "idle_since", None) is not None]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: c.idle_since)
            oldest.idle_since = None
            oldest.transport.close()
            return True

        def _arm_header_deadline(self) -> None:
            if self.header_deadline is None and self.idle_since is not None:
                self.header_deadline = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm_header_deadline(self) -> None:
            if self.header_deadline is not None:
                self.header_deadline.cancel()
                self.header_deadline = None

        def _headers_too_slow(self) -> None:
            self.header_deadline = None
            if self.idle_since is not None:  # still no complete request: let the socket go
                self.idle_since = None
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:  # a request is in progress
                self.idle_since = None
                self._disarm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            waiting = self.cycle is None or self.cycle.response_complete  # not a pipelined request already
            if waiting and not self.transport.is_closing():  # keep-alive: the next headers are due in time
                self.idle_since = time.monotonic()
                self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self.idle_since = None
            self._disarm_header_deadline()
            super().connection_lost(exc)

    return GuardedH11Protocol


def quiet_accept_errors(interval: float = ACCEPT_ERROR_INTERVAL):
    """An event-loop exception handler that logs each accept-loop error in one line, once per `interval`."""
    last: dict[str, float] = {}

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        message, error = context.get("message", ""), context.get("exception")
        if "accept" not in message and not (isinstance(error, OSError) and error.errno in (errno.EMFILE,
                                                                                             errno.ENFILE)):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - last.get(message, -math.inf) >= interval:
            last[message] = now
            LOG.error("%s: %s (the same error is logged at most once every %g s)", message, error, interval)

    return handler


class GuardedServer(uvicorn.Server):
    """uvicorn.Server whose event loop logs accept errors once per interval."""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(quiet_accept_errors())
        await super().serve(sockets)


def build_server(app, max_connections: int, header_timeout: float, log_level: str = "warning",
                 keep_alive: float = 5.0) -> GuardedServer:
    """A uvicorn server for `app` with the guards above; run it with `server.run(sockets=[bind_socket(...)])`."""
    protocol = guarded_protocol(connection_cap(max_connections), header_timeout)
    config = uvicorn.Config(app, http=protocol, log_level=log_level, timeout_keep_alive=keep_alive,
                            timeout_graceful_shutdown=60, lifespan="on", backlog=ACCEPT_BATCH)
    return GuardedServer(config)


__all__ = ["GuardedServer", "bind_socket", "build_server", "connection_cap", "guarded_protocol",
           "quiet_accept_errors"]
