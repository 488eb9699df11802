"""Render one frame as JPEG or PNG: modality LUT, VOI window, photometric, viewport."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space

from hounsfield.errors import ArchiveError
from hounsfield.imaging.decode import Decoded, decode_frame
from hounsfield.imaging.pixels import PixelSource

MEDIA_TYPES = ("image/jpeg", "image/png")


class RegionOutside(ArchiveError):
    """The viewport's source region does not overlap the image."""

    http_status = 400


@dataclass(frozen=True)
class Window:
    """A VOI window: center, width and function (LINEAR, LINEAR_EXACT or SIGMOID)."""

    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class RenderRequest:
    """What the client asked for."""

    media_type: str = "image/jpeg"
    viewport: tuple[int, int] | None = None  # (width, height) to fit inside
    window: Window | None = None
    quality: int = 90
    # The source region (sx, sy, sw, sh) of PS3.18's viewport; a negative width or height
    # flips the image on that axis.
    region: tuple[int, int, int, int] | None = None

    def key(self) -> str:
        """A stable text form for cache keys."""
        return f"{self.media_type}|{self.viewport}|{self.window}|{self.quality}|{self.region}"


def render(src: PixelSource, index: int, request: RenderRequest) -> tuple[bytes, Decoded]:
    """The encoded image of frame `index` (0-based) and how its pixels were decoded."""
    rows, cols = int(src.dataset.Rows), int(src.dataset.Columns)
    box = _box(request.region, cols, rows)
    want = request.viewport
    if want is not None and box is not None:
        # The whole image must be decoded large enough for the region to fill the viewport.
        scale = max(want[0] / max(1, box[2] - box[0]), want[1] / max(1, box[3] - box[1]))
        want = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    decoded = decode_frame(src, index, want)
    display = to_display(decoded, src.dataset, request.window)
    image = Image.fromarray(display, "RGB" if display.ndim == 3 else "L")
    if box is not None:
        factor = image.width / cols
        image = image.crop(tuple(round(v * factor) for v in box))  # type: ignore[arg-type]
        cols, rows = box[2] - box[0], box[3] - box[1]
        assert request.region is not None
        _, _, sw, sh = request.region
        if sw < 0:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if sh < 0:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if request.viewport is not None:
        image = image.resize(_fit(cols, rows, request.viewport), Image.Resampling.BILINEAR)
    out = BytesIO()
    if request.media_type == "image/png":
        image.save(out, "PNG", compress_level=1)
    else:
        image.save(out, "JPEG", quality=request.quality)
    return out.getvalue(), decoded


def _box(
    region: tuple[int, int, int, int] | None, cols: int, rows: int
) -> tuple[int, int, int, int] | None:
    """The (left, top, right, bottom) source box of a region, clipped to the image."""
    if region is None:
        return None
    sx, sy, sw, sh = region
    left, right = sorted((sx, sx + sw))
    top, bottom = sorted((sy, sy + sh))
    left, top = max(0, left), max(0, top)
    right, bottom = min(cols, right), min(rows, bottom)
    if right <= left or bottom <= top:
        raise RegionOutside(f"the viewport's source region {region} lies outside the image")
    return left, top, right, bottom


def _fit(cols: int, rows: int, viewport: tuple[int, int]) -> tuple[int, int]:
    scale = min(viewport[0] / cols, viewport[1] / rows)
    return max(1, round(cols * scale)), max(1, round(rows * scale))


def to_display(decoded: Decoded, ds: Dataset, window: Window | None) -> np.ndarray:
    """8-bit grey or RGB samples ready to encode."""
    pixels = decoded.pixels
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR" and pixels.ndim == 2:
        return _to_8bit(apply_color_lut(pixels, ds))
    if pixels.ndim == 3:
        if photometric.startswith("YBR") and not decoded.color_converted:
            pixels = convert_color_space(pixels, "YBR_FULL", "RGB")
        return _to_8bit(pixels[:, :, :3], int(ds.get("BitsStored") or 8))
    values = apply_modality_lut(pixels, ds)
    if window is None and "VOILUTSequence" in ds and "WindowCenter" not in ds:
        out = _stretch(np.asarray(apply_voi_lut(pixels, ds), dtype=np.float64))
    else:
        chosen = window or _window_of(ds) or _min_max(values)
        out = _apply_window(np.asarray(values, dtype=np.float64), chosen)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out


def _to_8bit(pixels: np.ndarray, bits: int | None = None) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    depth = bits or (16 if pixels.max(initial=0) > 255 else 8)
    shift = max(0, depth - 8)
    return np.ascontiguousarray((pixels >> shift).clip(0, 255).astype(np.uint8))


def _window_of(ds: Dataset) -> Window | None:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None or center == "" or width == "":
        return None
    try:
        function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
        return Window(_first(center), max(1.0, _first(width)), function)
    except (TypeError, ValueError, IndexError):
        return None


def _first(value: object) -> float:
    if isinstance(value, str | int | float):
        return float(value)
    return float(value[0])  # type: ignore[index]


def _min_max(values: np.ndarray) -> Window:
    low, high = float(np.min(values)), float(np.max(values))
    width = max(1.0, high - low)
    return Window(low + width / 2, width)


def _apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    elif window.function == "LINEAR_EXACT":
        out = ((values - c) / w + 0.5) * 255.0
    else:
        w = max(w, 1.0)
        out = ((values - (c - 0.5)) / max(w - 1.0, 1.0) + 0.5) * 255.0
    return out.clip(0, 255).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return ((values - low) * (255.0 / (high - low))).clip(0, 255).astype(np.uint8)
