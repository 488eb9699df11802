"""A deadline for each HTTP request's header: uvicorn times out idle keep-alive connections
but not a client that sends its request line and headers a byte at a time, which would hold
its connection (and a file descriptor) for ever."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def header_deadline_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing a connection whose next request header has not fully
    arrived `seconds` after the connection opened or the previous answer ended."""

    class HeaderDeadline(HttpToolsProtocol):
        """HttpToolsProtocol with a header deadline."""

        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            answering = self.cycle is not None and not self.cycle.response_complete
            if not answering and not self.transport.is_closing():
                self.logger.info(
                    "HTTP client %s sent no whole request header in %.0f s: closed",
                    self.client,
                    seconds,
                )
                self.transport.close()

    return HeaderDeadline
