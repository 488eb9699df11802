"""Time a screen-size render against a full decode of the same frame (for benchmarks)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from hounsfield.imaging.decode import decode_frame
from hounsfield.imaging.pixels import open_source
from hounsfield.imaging.render import RenderRequest, render


@dataclass(frozen=True)
class DecodeTimes:
    """Best-of-n seconds for each way of reaching a screen-size image of frame 1."""

    reduced_decode: float  # decode at the lowest resolution that fills the viewport
    full_decode: float  # decode every pixel
    rendered: float  # reduced decode + LUTs + resize + JPEG encode, no cache
    method: str  # how the reduced decode was done


def decode_times(path: Path, size: int = 512, repeat: int = 3) -> DecodeTimes:
    """Measure reduced versus full decoding of a stored file for a `size`-pixel viewport."""
    want = (size, size)
    request = RenderRequest("image/jpeg", want)

    def best(run: object) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times)

    method = decode_frame(open_source(path), 0, want).method
    return DecodeTimes(
        reduced_decode=best(lambda: decode_frame(open_source(path), 0, want)),
        full_decode=best(lambda: decode_frame(open_source(path), 0, None)),
        rendered=best(lambda: render(open_source(path), 0, request)),
        method=method,
    )
