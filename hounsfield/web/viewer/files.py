"""OHIF's static files: long-lived caching for hashed bundles, revalidation for the rest, and the
pre-compressed (.gz) copy when the browser takes gzip."""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles

# Webpack's content-hashed names: 1602.bundle.94f12cceab7c2762.js, 0ddf166f7a343eda.wasm.
HASHED = re.compile(r"(^|[./])[0-9a-f]{16}\.(js|wasm|css|woff2?)$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def cache_control(name: str) -> str:
    """Cache for a year what has its content's hash in its name; revalidate everything else."""
    return IMMUTABLE if HASHED.search(name) else REVALIDATE


class ViewerFiles:
    """Looks up and answers files of one folder (never outside it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._static = StaticFiles(directory=folder, check_dir=False)

    def lookup(self, path: str) -> tuple[str, os.stat_result] | None:
        """The regular file at `path` (relative, '/'-separated) under the folder, if any."""
        relative = os.path.normpath(path.lstrip("/")) if path.strip("/") else ""
        if not relative or relative.startswith("..") or "\x00" in relative:
            return None
        try:
            full, found = self._static.lookup_path(relative)
        except (OSError, ValueError):
            return None
        if found is None or not stat.S_ISREG(found.st_mode):
            return None
        return full, found

    def response(self, path: str, headers: Headers) -> Response | None:
        """The file at `path` with its caching headers (304 when unchanged); None if absent."""
        found = self.lookup(path)
        if found is None:
            return None
        full, info = found
        media_type = mimetypes.guess_type(full)[0] or "application/octet-stream"
        extra = {"Cache-Control": cache_control(full), "Vary": "Accept-Encoding"}
        if "gzip" in headers.get("accept-encoding", "").lower():
            packed = self.lookup(path + ".gz")
            if packed is not None:
                full, info = packed
                extra["Content-Encoding"] = "gzip"
        answer = FileResponse(full, stat_result=info, media_type=media_type, headers=extra)
        if self._static.is_not_modified(answer.headers, headers):
            return NotModifiedResponse(answer.headers)
        return answer
