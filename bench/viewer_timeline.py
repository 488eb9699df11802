"""Every request of one viewer opening as CDP reports it (start, response, end, body bytes),
and the milestones between navigation and the first image drawn."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("shell", "config", "qido", "metadata", "thumbnail", "frame")


def kind(url: str) -> str:
    """What a request is for: OHIF's files, app-config.js, or a kind of DICOMweb request."""
    path = url.split("?", 1)[0]
    if "/frames/" in path:
        return "frame"
    if path.endswith("/metadata"):
        return "metadata"
    if path.endswith(("/thumbnail", "/rendered")):
        return "thumbnail"
    if "/dicomweb" in path or "/dicom-web" in path:
        return "qido"
    if path.endswith("/app-config.js"):
        return "config"
    return "shell"


@dataclass
class Request:
    """One request, times in wall-clock milliseconds (end is None while it runs)."""

    url: str
    kind: str
    start: float
    range: str = ""
    status: int = 0
    cached: bool = False
    response: float | None = None
    end: float | None = None
    body: int = 0  # decoded body bytes (Network.dataReceived)
    wire: int = 0  # bytes on the wire, headers included (Network.loadingFinished)
    chunks: list[tuple[float, int]] = field(default_factory=list)


@dataclass
class Timeline:
    """The requests of one page, by CDP request id, in arrival order."""

    offset: float = 0.0  # wallTime - timestamp (seconds)
    requests: dict[str, Request] = field(default_factory=dict)

    def _at(self, event: dict[str, Any]) -> float:
        return (event["timestamp"] + self.offset) * 1000

    def watch(self, cdp: Any) -> None:
        """Follow the page's network events."""

        def sent(event: dict[str, Any]) -> None:
            self.offset = event["wallTime"] - event["timestamp"]
            url = event["request"]["url"]
            if url.startswith("data:"):
                return
            headers = {k.lower(): v for k, v in event["request"].get("headers", {}).items()}
            self.requests[event["requestId"]] = Request(
                url, kind(url), self._at(event), headers.get("range", "")
            )

        def answered(event: dict[str, Any]) -> None:
            got = self.requests.get(event["requestId"])
            if got is not None:
                got.response = self._at(event)
                got.status = event["response"]["status"]
                got.cached = bool(event["response"].get("fromDiskCache"))

        def data(event: dict[str, Any]) -> None:
            got = self.requests.get(event["requestId"])
            if got is not None:
                got.body += event["dataLength"]
                got.chunks.append((self._at(event), event["dataLength"]))

        def done(event: dict[str, Any]) -> None:
            got = self.requests.get(event["requestId"])
            if got is not None:  # under throttling the event can come before the last data
                got.end = max([self._at(event), *(t for t, _ in got.chunks)])
                got.wire = int(event.get("encodedDataLength", 0))

        def failed(event: dict[str, Any]) -> None:
            got = self.requests.get(event["requestId"])
            if got is not None:
                got.end = self._at(event)

        cdp.on("Network.requestWillBeSent", sent)
        cdp.on("Network.responseReceived", answered)
        cdp.on("Network.dataReceived", data)
        cdp.on("Network.loadingFinished", done)
        cdp.on("Network.loadingFailed", failed)

    def of(self, what: str) -> list[Request]:
        """The requests of one kind, in the order they were sent."""
        return [r for r in self.requests.values() if r.kind == what]

    def frame_requests(self, url: str) -> list[Request]:
        """The requests for the frame at `url` (several with byte ranges)."""
        return [r for r in self.of("frame") if r.url == url]

    def bytes_until(self, url: str, at: float) -> int:
        """Body bytes of the frame at `url` received up to wall time `at` (ms)."""
        return sum(n for r in self.frame_requests(url) for t, n in r.chunks if t <= at)

    def completed_until(self, url: str, at: float) -> int:
        """Body bytes of the requests for the frame at `url` that had ended by `at` (ms)."""
        return sum(r.body for r in self.frame_requests(url) if r.end is not None and r.end <= at)

    def dump(self, start: float) -> list[dict[str, Any]]:
        """The requests as plain rows, times in ms from `start`, without their chunks."""
        rows = []
        for r in self.requests.values():
            row = asdict(r)
            del row["chunks"]
            for key in ("start", "response", "end"):
                row[key] = None if row[key] is None else round(row[key] - start, 1)
            rows.append(row)
        return rows


FULL_RESOLUTION = 8  # Cornerstone's ImageQualityStatus of a completely decoded image
DECODE_LEVEL_CAP = 3  # the stages' decodeLevel in the node's app-config.js


def guessed_level(share: float, cap: int = DECODE_LEVEL_CAP) -> int:
    """The resolution level Cornerstone decodes a partial frame at, from the share of its bytes
    received (its decodeLevelFromComplete): 0 full size, 1 half, 2 quarter, 3 eighth."""
    test = share - 0.02
    for level, above in ((0, 1 / 4), (1, 1 / 16), (2, 1 / 64)):
        if test > above:
            return min(cap, level)
    return min(cap, 3)


def decoded_from(line: Timeline, url: str, render: dict[str, Any]) -> int:
    """The bytes of the frame at `url` an image Cornerstone rendered was decoded from: all of
    them at full quality; else the bytes up to the end of the first range after which
    Cornerstone would decode at the rendered image's size (its width against the frame's
    columns), or, failing that, the bytes of the ranges complete when it was rendered."""
    requests = line.frame_requests(url)
    total = sum(r.body for r in requests)
    if render.get("q") == FULL_RESOLUTION or not total:
        return total
    width, columns = render.get("w") or 0, render.get("columns") or 0
    level = round(math.log2(columns / width)) if width and columns else None
    got = 0
    for r in requests:
        got += r.body
        if got < total and guessed_level(got / total) == level:
            return got
    return line.completed_until(url, render["t"])


@dataclass
class Milestones:
    """Seconds from navigation: app ready (its first DICOMweb request), QIDO answered,
    metadata answered, the shown frame requested, its first bytes, first image drawn."""

    app: float
    qido: float
    metadata: float
    frame_request: float
    frame_bytes: float
    paint: float


def milestones(line: Timeline, shown: str, start: float, paint: float) -> Milestones:
    """The milestones of one opening whose shown frame is `shown`, drawn at `paint` (ms)."""
    web = [r for r in line.requests.values() if r.kind not in ("shell", "config")]
    app = min(r.start for r in web)

    def answered(what: str) -> float:
        ends = [r.end for r in line.of(what) if r.end is not None and r.start < paint]
        return max(ends) if ends else app

    frame = line.frame_requests(shown)
    first_bytes = min((t for r in frame for t, _ in r.chunks), default=paint)
    return Milestones(
        *(
            (t - start) / 1000
            for t in (
                app,
                answered("qido"),
                answered("metadata"),
                frame[0].start if frame else paint,
                first_bytes,
                paint,
            )
        )
    )
