"""Connection-level defences of the HTTP intake, as a uvicorn protocol class.

uvicorn never times out a connection that sends its request headers slowly (or not at all),
so a few dozen idle sockets used to fill `limit_concurrency` and lock everyone out. This
protocol closes a connection whose request headers are not complete `header_timeout` seconds
after it opened or after its previous response, and refuses more than `per_client`
simultaneous connections from one address. (Body read time is bounded in the app.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


def guarded_protocol(header_timeout: float, per_client: int) -> type[H11Protocol]:
    """An H11Protocol subclass with a header deadline and a per-address connection cap."""
    open_by_peer: dict[str, int] = {}
    warned: set[str] = set()  # peers told about once until all their connections closed

    class Guarded(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _peer: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = self.client[0] if self.client else "?"
            count = open_by_peer.get(peer, 0) + 1
            if count > per_client:
                if peer not in warned:
                    warned.add(peer)
                    log.warning("intake: %s has %d connections open; refusing more", peer, per_client)
                transport.close()
                return
            self._peer, open_by_peer[peer] = peer, count
            self._arm()

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(header_timeout, self._headers_late)

        def _headers_late(self) -> None:
            idle = self.cycle is None or self.cycle.response_complete  # no request in flight: headers pending
            if idle and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._deadline is not None:
                self._deadline.cancel()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Any) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            if self._peer is not None:
                left = open_by_peer[self._peer] - 1
                if left:
                    open_by_peer[self._peer] = left
                else:
                    del open_by_peer[self._peer]
                    warned.discard(self._peer)
                self._peer = None
            super().connection_lost(exc)

    return Guarded
