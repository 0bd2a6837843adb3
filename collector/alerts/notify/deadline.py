"""A total deadline per send, and HTTP POST that never follows redirects.

Socket timeouts bound each read, not the whole exchange: a server answering one byte every
3 s keeps a 5 s timeout waiting forever. `Deadline` shuts the connection's socket down when the
total time is up, which wakes any blocked read at once. `post` is a plain http.client request:
a 3xx answer is a failure (a redirect could carry the body and its HMAC signature elsewhere),
and no error text includes the URL (webhook paths and query strings are secrets).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit

from collector.alerts.notify.base import NotifyError, status_error


class Deadline:
    """`with Deadline(seconds, lambda: sock):` — the socket is shut down if the block runs past `seconds`."""

    def __init__(self, seconds: float, sock: Callable[[], socket.socket | None]) -> None:
        self.seconds = seconds
        self._sock = sock
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        sock = self._sock()
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._timer.cancel()
        if self.expired and kind is not None and issubclass(kind, OSError | http.client.HTTPException | ssl.SSLError):
            raise NotifyError(f"no complete answer within {self.seconds:g} s", retryable=True) from None


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    """POST `body`; NotifyError unless the answer is 2xx within `timeout` seconds in total."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifyError("the URL is not an http(s) URL", retryable=False)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        with Deadline(timeout, lambda: connection.sock):
            connection.request("POST", target, body=body, headers=headers)
            answer = connection.getresponse()
            text = answer.read(4096).decode("utf-8", "replace")
    except NotifyError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise NotifyError(
            f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or 'connection failed'}", True
        ) from None
    finally:
        connection.close()
    if 300 <= answer.status < 400:
        raise NotifyError(f"HTTP {answer.status}: redirect refused (notifiers never follow redirects)", retryable=False)
    if answer.status >= 400:
        raise status_error(answer.status, text)
