"""Running the app under uvicorn with guards against clients that hold connections open.

uvicorn closes an idle keep-alive connection, but not one whose request headers never finish (a client
sending them a byte at a time, or not at all): enough of those exhaust the server's file descriptors
and even /api/health stops answering. `GuardedH11Protocol` gives every request `header_timeout_s` to
deliver its headers (the body is the app's business: `LimitUploadSize` watches its pace). On top,
`limit_concurrency` answers 503 beyond that many connections at once, and the soft limit on open
files is raised to the hard one. A public server should still sit behind a reverse proxy.
"""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete in time."""

    header_timeout_s = 15.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete  # no request being handled
        if waiting and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and self._deadline is not None:  # a request's headers arrived
            self._deadline.cancel()
            self._deadline = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._deadline is None and not self.transport.is_closing():
            # the next request on this connection: the keep-alive timeout covers the wait for its
            # first byte, this deadline its headers once they start
            self._deadline = self.loop.call_later(self.timeout_keep_alive + self.header_timeout_s, self._headers_late)

    def connection_lost(self, exc) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)


def raise_open_files_limit() -> int:
    """The soft limit on open files raised to the hard one (where the system allows); returns it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def can_listen(host: str, port: int) -> str:
    """'' when `host:port` can be listened on now, else why not (address in use, not this machine's)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return exc.strerror or str(exc)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


def serve(app, host: str, port: int, header_timeout_s: float = 15.0, limit_concurrency: int | None = None) -> None:
    """Run `app` with uvicorn and the guards above (blocking)."""
    import uvicorn

    files = raise_open_files_limit()
    protocol = type("Guarded", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})
    # keep-alive 60 s, not uvicorn's 5: a client whose pooled connection waited longer than that behind
    # queued analyses would otherwise race the server's close and see a dropped connection
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=60, http=protocol,
                limit_concurrency=limit_concurrency or max(64, files // 2))
