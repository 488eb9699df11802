"""Rendered images and thumbnails of instances, frames, series and studies (JPEG or PNG)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located
from hounsfield.catalog.partitions import Partition
from hounsfield.errors import NotFound
from hounsfield.imaging.cache import RenderCache
from hounsfield.imaging.render import MEDIA_TYPES, RenderRequest, Window, render
from hounsfield.web.dicomweb.accept import parse_accept
from hounsfield.web.dicomweb.common import BadRequest, NotAcceptable, find_objects
from hounsfield.web.dicomweb.sources import pixel_source
from hounsfield.web.dicomweb.tenant import AtPartition

log = logging.getLogger(__name__)
THUMBNAIL = (128, 128)
MAX_VIEWPORT = 8192


def media_type(accept: str | None) -> str:
    """image/jpeg or image/png, whichever the client prefers."""
    for r in parse_accept(accept):
        for candidate in MEDIA_TYPES:
            if r.media_type == candidate or (not r.multipart and r.matches(candidate)):
                return candidate
            if r.media_type in ("*/*", "image/*"):
                return MEDIA_TYPES[0]
    raise NotAcceptable(f"rendered images are served as {' or '.join(MEDIA_TYPES)}")


def _numbers(text: str, name: str, count: int = 2) -> list[float]:
    try:
        return [float(v) for v in text.split(",")[:count]]
    except ValueError as exc:
        raise BadRequest(f"{name} must be numbers separated by commas, got {text!r}") from exc


def render_request(
    params: object, accept: str | None, default_viewport: tuple[int, int] | None
) -> RenderRequest:
    """Decode the window, viewport and quality query parameters."""
    get = params.get  # type: ignore[attr-defined]
    viewport = default_viewport
    region = None
    if get("viewport"):
        values = _numbers(get("viewport"), "viewport", 6)
        if len(values) not in (2, 6) or not all(0 < v <= MAX_VIEWPORT for v in values[:2]):
            raise BadRequest(
                f"viewport must be vw,vh[,sx,sy,sw,sh] with vw, vh between 1 and {MAX_VIEWPORT}"
            )
        viewport = (int(values[0]), int(values[1]))
        if len(values) == 6:
            sx, sy, sw, sh = (int(v) for v in values[2:])
            if sx < 0 or sy < 0 or sw == 0 or sh == 0:
                raise BadRequest("viewport region needs sx, sy >= 0 and a non-zero sw, sh")
            region = (sx, sy, sw, sh)
    window = None
    if get("window"):
        parts = get("window").split(",")
        values = _numbers(",".join(parts[:2]), "window")
        if len(values) < 2 or values[1] <= 0:
            raise BadRequest("window must be center,width[,function] with a positive width")
        function = parts[2].strip().upper() if len(parts) > 2 else "LINEAR"
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            raise BadRequest(f"unknown window function {function!r}")
        window = Window(values[0], values[1], function)
    quality = 90
    if get("quality"):
        try:
            quality = int(get("quality"))
        except ValueError as exc:
            raise BadRequest("quality must be a whole number from 1 to 100") from exc
        if not 1 <= quality <= 100:
            raise BadRequest("quality must be a whole number from 1 to 100")
    return RenderRequest(media_type(accept), viewport, window, quality, region)


class Renderer:
    """Renders stored objects through the on-disk cache."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        settings = archive.settings
        self.cache = RenderCache(
            settings.data_dir / "cache" / "rendered", settings.render_cache_bytes
        )

    def one(self, located: Located, frame: int, request: RenderRequest) -> tuple[bytes, str]:
        """The image of one frame (1-based) and how it was produced ('cache' on a hit)."""
        stored = located.readable()
        stat = stored.stat()
        key = self.cache.key(stored, stat.st_size, stat.st_mtime_ns, frame, request.key())
        cached = self.cache.get(key)
        if cached is not None:
            return cached, "cache"
        src = pixel_source(stored)
        if not 1 <= frame <= src.frames:
            raise NotFound(f"frame {frame} does not exist: the object has {src.frames}")
        data, decoded = render(src, frame - 1, request)
        self.cache.put(key, data)
        return data, decoded.method

    def representative(self, found: list[Located], request: RenderRequest) -> tuple[bytes, str]:
        """The middle image of the first series that has one."""
        by_series: dict[str, list[Located]] = {}
        for located in found:
            by_series.setdefault(located.path.parent.name, []).append(located)
        for items in by_series.values():
            order = sorted(range(len(items)), key=lambda i: abs(i - len(items) // 2))
            for i in order:
                try:
                    return self.one(items[i], 1, request)
                except NotFound:
                    continue
        raise NotFound("no object here has pixel data to render")


def router(archive: Archive) -> APIRouter:
    """The rendered and thumbnail routes."""
    api = APIRouter()
    renderer = Renderer(archive)
    instance = "/studies/{study}/series/{series}/instances/{sop}"

    def answer(
        request: Request,
        partition: Partition,
        study: str,
        series: str | None = None,
        sop: str | None = None,
        frame: int = 1,
        thumbnail: bool = False,
    ) -> Response:
        wanted = render_request(
            request.query_params, request.headers.get("accept"), THUMBNAIL if thumbnail else None
        )
        found = find_objects(archive, partition, study, series, sop)
        if sop is not None:
            data, how = renderer.one(found[0], frame, wanted)
        else:
            data, how = renderer.representative(found, wanted)
        return Response(data, media_type=wanted.media_type, headers={"X-Rendered-By": how})

    @api.get("/studies/{study}/rendered")
    def study_rendered(request: Request, partition: AtPartition, study: str) -> Response:
        return answer(request, partition, study)

    @api.get("/studies/{study}/series/{series}/rendered")
    def series_rendered(
        request: Request, partition: AtPartition, study: str, series: str
    ) -> Response:
        return answer(request, partition, study, series)

    @api.get(instance + "/rendered")
    def instance_rendered(
        request: Request, partition: AtPartition, study: str, series: str, sop: str
    ) -> Response:
        return answer(request, partition, study, series, sop)

    @api.get(instance + "/frames/{frame}/rendered")
    def frame_rendered(
        request: Request, partition: AtPartition, study: str, series: str, sop: str, frame: int
    ) -> Response:
        return answer(request, partition, study, series, sop, frame)

    @api.get("/studies/{study}/thumbnail")
    def study_thumbnail(request: Request, partition: AtPartition, study: str) -> Response:
        return answer(request, partition, study, thumbnail=True)

    @api.get("/studies/{study}/series/{series}/thumbnail")
    def series_thumbnail(
        request: Request, partition: AtPartition, study: str, series: str
    ) -> Response:
        return answer(request, partition, study, series, thumbnail=True)

    @api.get(instance + "/thumbnail")
    def instance_thumbnail(
        request: Request, partition: AtPartition, study: str, series: str, sop: str
    ) -> Response:
        return answer(request, partition, study, series, sop, thumbnail=True)

    @api.get(instance + "/frames/{frame}/thumbnail")
    def frame_thumbnail(
        request: Request, partition: AtPartition, study: str, series: str, sop: str, frame: int
    ) -> Response:
        return answer(request, partition, study, series, sop, frame, thumbnail=True)

    return api
