"""Parse an HTTP Accept header into media ranges with their parameters, best first."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ITEM = re.compile(r'(?:[^,"]|"[^"]*")+')
_PARAM = re.compile(r'\s*([^=;\s]+)\s*=\s*("([^"]*)"|[^;]*)')


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header, e.g. multipart/related; type="application/dicom"."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def multipart(self) -> bool:
        """True for multipart/related (and for wildcards that allow it)."""
        return self.media_type in ("multipart/related", "multipart/*", "*/*")

    @property
    def part_type(self) -> str:
        """The media type of the parts (or of the body when not multipart)."""
        if self.media_type == "multipart/related":
            return self.params.get("type", "*/*").lower()
        return self.media_type

    @property
    def transfer_syntax(self) -> str | None:
        """The transfer-syntax parameter, if any."""
        return self.params.get("transfer-syntax")

    def matches(self, media_type: str) -> bool:
        """Whether a concrete part media type falls within this range's part type."""
        want = self.part_type
        if want in ("*/*", "*"):
            return True
        if want.endswith("/*"):
            return media_type.startswith(want[:-1])
        return want == media_type


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, highest quality first; */* when absent."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    out: list[MediaRange] = []
    for raw in _ITEM.findall(header):
        head, _, rest = raw.strip().partition(";")
        media_type = head.strip().lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        q = 1.0
        for m in _PARAM.finditer(rest):
            key = m.group(1).lower()
            value = m.group(3) if m.group(3) is not None else m.group(2).strip()
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            else:
                params[key] = value
        if q > 0:
            out.append(MediaRange(media_type, params, q))
    out.sort(key=lambda r: -r.q)
    return out
