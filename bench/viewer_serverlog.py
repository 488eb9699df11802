"""An ASGI wrapper that notes, per request, when the server got it, began its answer and ended."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _now() -> float:
    return time.time() * 1000


class ServerLog:
    """`app` with a log of its requests: path and query, Range, and wall times in ms."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.entries: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        query = scope.get("query_string", b"").decode()
        entry: dict[str, Any] = {
            "path": scope["path"] + (f"?{query}" if query else ""),
            "range": headers.get(b"range", b"").decode(),
            "received": _now(),
            "head": None,
            "end": None,
        }
        self.entries.append(entry)

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["head"] = _now()
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                entry["end"] = _now()
            await send(message)

        await self.app(scope, receive, timed)

    def since(self, start: float) -> list[dict[str, Any]]:
        """The entries of requests received from wall time `start` (ms) on, times made
        relative to it."""
        out = []
        for e in self.entries:
            if e["received"] >= start:
                out.append(
                    {
                        **e,
                        **{
                            k: None if e[k] is None else round(e[k] - start, 1)
                            for k in ("received", "head", "end")
                        },
                    }
                )
        return out
