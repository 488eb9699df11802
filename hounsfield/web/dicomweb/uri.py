"""WADO-URI (?requestType=WADO) for legacy viewers: a DICOM file or a rendered image."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydicom.uid import ExplicitVRLittleEndian

from hounsfield.archive.context import Archive
from hounsfield.imaging.render import MEDIA_TYPES, RenderRequest, Window
from hounsfield.imaging.transcode import choose, transcode
from hounsfield.web.batched import streamed
from hounsfield.web.dicomweb import multipart
from hounsfield.web.dicomweb.common import BadRequest, NotAcceptable, find_one
from hounsfield.web.dicomweb.rendered import Renderer
from hounsfield.web.dicomweb.tenant import AtPartition

DICOM = "application/dicom"


def _number(params: Any, name: str, kind: type = float) -> Any:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return kind(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a number, got {raw!r}") from exc


def render_request(params: Any, media_type: str) -> RenderRequest:
    """The rendering a WADO-URI request asks for (rows/columns bound the size)."""
    rows, columns = _number(params, "rows", int), _number(params, "columns", int)
    viewport = None
    if rows or columns:
        if (rows or 1) < 1 or (columns or 1) < 1:
            raise BadRequest("rows and columns must be positive")
        viewport = (columns or rows, rows or columns)
    center, width = _number(params, "windowCenter"), _number(params, "windowWidth")
    window = None
    if center is not None and width is not None:
        if width <= 0:
            raise BadRequest("windowWidth must be positive")
        window = Window(center, width)
    quality = _number(params, "imageQuality", int) or 90
    if not 1 <= quality <= 100:
        raise BadRequest("imageQuality must be from 1 to 100")
    return RenderRequest(media_type, viewport, window, quality)


def router(archive: Archive) -> APIRouter:
    """The WADO-URI route (at /dicomweb/wado and at the DICOMweb root)."""
    api = APIRouter()
    renderer = Renderer(archive)

    def wado(request: Request, partition: AtPartition) -> Response:
        params = request.query_params
        if params.get("requestType") != "WADO":
            raise BadRequest("WADO-URI needs requestType=WADO")
        missing = [k for k in ("studyUID", "seriesUID", "objectUID") if not params.get(k)]
        if missing:
            raise BadRequest(f"WADO-URI needs {', '.join(missing)}")
        located = find_one(
            archive, partition, params["studyUID"], params["seriesUID"], params["objectUID"]
        )
        kinds = [
            c.split(";")[0].strip() for c in params.get("contentType", "image/jpeg").split(",")
        ]
        for kind in kinds:
            if kind == DICOM:
                wanted = params.get("transferSyntax") or ExplicitVRLittleEndian
                target = choose(located.transfer_syntax, [wanted])
                if target is None:
                    return streamed(
                        multipart.file_chunks(located.readable(), 0, located.size),
                        DICOM,
                        headers={"Content-Length": str(located.size)},
                    )
                body = transcode(located.readable(), target)
                return Response(body, media_type=DICOM)
            if kind in MEDIA_TYPES or kind in ("*/*", "image/*"):
                media = kind if kind in MEDIA_TYPES else MEDIA_TYPES[0]
                wanted_render = render_request(params, media)
                frame = _number(params, "frameNumber", int) or 1
                data, how = renderer.one(located, frame, wanted_render)
                return Response(data, media_type=media, headers={"X-Rendered-By": how})
        raise NotAcceptable(f"contentType {params.get('contentType')!r} is not served")

    api.add_api_route("/wado", wado, methods=["GET"])
    api.add_api_route("", wado, methods=["GET"])
    return api
