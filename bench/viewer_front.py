"""OHIF for Orthanc, same-origin: the viewer's files, an app-config.js with OHIF's default
DICOMweb options, and /dicom-web passed through to Orthanc (its plugin sends no CORS headers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from hounsfield.web.viewer.files import REVALIDATE, ViewerFiles

PASSED = ("accept", "accept-encoding", "range", "if-none-match", "if-range")
RETURNED = (
    "content-type",
    "content-encoding",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
)


def orthanc_config(root: str) -> str:
    """app-config.js for one DICOMweb source at `root` with OHIF's usual options (streaming
    frames, thumbnails from /rendered)."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "orthanc",
        "configuration": {
            "friendlyName": "Orthanc",
            "name": "orthanc",
            "wadoUriRoot": root,
            "qidoRoot": root,
            "wadoRoot": root,
            "qidoSupportsIncludeField": False,
            "supportsReject": False,
            "imageRendering": "wadors",
            "thumbnailRendering": "rendered",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "staticWado": False,
            "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
            "omitQuotationForMultipartRequest": True,
        },
    }
    config = {
        "routerBasename": None,
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "defaultDataSourceName": "orthanc",
        "dataSources": [source],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n"


def front(viewer: Path, orthanc: str) -> FastAPI:
    """The app: OHIF from `viewer`, /dicom-web/… relayed to the same path on `orthanc`."""
    app = FastAPI()
    files = ViewerFiles(viewer)
    # the browser's own Accept-Encoding goes to Orthanc, and its answer comes back as it is
    client = httpx.AsyncClient(
        base_url=orthanc, timeout=120, headers={"accept-encoding": "identity"}
    )

    @app.get("/app-config.js")
    def config(request: Request) -> Response:
        root = f"{request.url.scheme}://{request.url.netloc}/dicom-web"
        return Response(orthanc_config(root), media_type="text/javascript")

    @app.get("/dicom-web/{path:path}")
    async def relay(request: Request, path: str) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in PASSED}
        target = client.build_request(
            "GET", f"/dicom-web/{path}", params=request.query_params, headers=headers
        )
        answer = await client.send(target, stream=True)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_raw():
                    yield chunk
            finally:
                await answer.aclose()

        out = {k: v for k, v in answer.headers.items() if k.lower() in RETURNED}
        return StreamingResponse(body(), status_code=answer.status_code, headers=out)

    @app.get("/{path:path}")
    def page(request: Request, path: str) -> Response:
        found = files.response(request.url.path, request.headers) or files.response(
            "index.html", request.headers
        )
        if found is None:
            return Response(status_code=404)
        if request.url.path in ("/", "/index.html"):
            found.headers["Cache-Control"] = REVALIDATE
        return found

    return app
