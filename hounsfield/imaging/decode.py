"""Decode one frame at the lowest resolution that still fills the requested size."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from io import BytesIO

import imagecodecs
import numpy as np
from PIL import Image
from pydicom.pixels import pixel_array

from hounsfield.errors import InvalidDataset
from hounsfield.imaging.codestream import CodestreamError, main_header
from hounsfield.imaging.pixels import PixelSource, stored_frame
from hounsfield.imaging.progressive import resolution_prefix

log = logging.getLogger(__name__)
JPEG2000 = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
HTJ2K = {"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
IN_PLACE_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL"}


def use_threads(count: int) -> None:
    """Let each JPEG 2000 decode of this process use `count` threads (0: one per CPU).
    OpenJPEG reads OPJ_NUM_THREADS whenever it creates a decoder, Pillow's included."""
    os.environ["OPJ_NUM_THREADS"] = str(count or os.cpu_count() or 1)


@dataclass(frozen=True)
class Decoded:
    """A frame's samples, possibly at reduced resolution, and how they were reached."""

    pixels: np.ndarray  # (rows, cols) or (rows, cols, samples)
    # "j2k-reduce", "htj2k-prefix", "htj2k-skipres", "jpeg-draft", "decimate", "full"
    method: str
    color_converted: bool  # True when the decoder already produced RGB


def reduction(rows: int, cols: int, want: tuple[int, int] | None) -> int:
    """The largest power-of-two level r whose image (size / 2**r) still fills `want`."""
    if want is None:
        return 0
    width, height = want
    scale = min(width / cols, height / rows)
    if scale >= 1:
        return 0
    return max(0, math.floor(math.log2(1 / scale)))


def decode_frame(src: PixelSource, index: int, want: tuple[int, int] | None) -> Decoded:
    """Frame `index` (0-based) decoded as small as `want` (width, height) allows."""
    ds = src.dataset
    rows, cols = int(ds.Rows), int(ds.Columns)
    level = reduction(rows, cols, want)
    syntax = src.transfer_syntax
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    try:
        if syntax in JPEG2000 and not signed:
            return _jpeg2000(src, index, level)
        if syntax in HTJ2K:
            return _htj2k(src, index, level)
        if syntax == JPEG_BASELINE and want is not None:
            return _jpeg_draft(src, index, want)
    except Exception as exc:  # an unusual codestream: fall back to the full decode
        log.debug("reduced decode of %s failed, decoding fully: %s", src.path.name, exc)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if src.in_place and photometric in IN_PLACE_PHOTOMETRIC:
        return _decimate_in_place(src, index, level_factor(rows, cols, want))
    return _full(src, index, level_factor(rows, cols, want))


def level_factor(rows: int, cols: int, want: tuple[int, int] | None) -> int:
    """The integer decimation step that keeps the image at least as large as `want`."""
    if want is None:
        return 1
    scale = min(want[0] / cols, want[1] / rows)
    return max(1, math.floor(1 / scale)) if scale < 1 else 1


def decomposition_levels(codestream: bytes) -> int:
    """The number of wavelet decomposition levels in a J2K main header's COD segment."""
    try:
        return main_header(codestream).levels
    except CodestreamError:
        return 0


def _jpeg2000(src: PixelSource, index: int, level: int) -> Decoded:
    data = stored_frame(src, index)
    level = min(level, decomposition_levels(data))
    image = Image.open(BytesIO(data))
    if level:
        # Pillow rounds the reduced size to nearest where OpenJPEG rounds up: set it here.
        width, height = image.size
        image._size = (-(-width >> level), -(-height >> level))
        tile = image.tile[0]
        old = tuple(tile.args or ())
        args = (old[0], level, *old[2:])
        image.tile = [tile._replace(extents=(0, 0, *image.size), args=args)]
    image.load()
    pixels = np.asarray(image)
    if pixels.dtype == np.uint16:
        stored = int(src.dataset.get("BitsStored") or 16)
        precision = _precision(data) or stored
        if precision < 16:
            pixels = pixels >> (16 - precision)
    return Decoded(pixels, "j2k-reduce" if level else "full", pixels.ndim == 3)


def _precision(codestream: bytes) -> int:
    """Component 0 bit depth from the SIZ segment (0 when unreadable)."""
    if codestream[2:4] != b"\xff\x51":
        return 0
    ssiz = codestream[2 + 2 + 2 + 36]
    return (ssiz & 0x7F) + 1


def _htj2k(src: PixelSource, index: int, level: int) -> Decoded:
    prefix = resolution_prefix(src, index, level) if level else None
    if prefix is not None:  # RPCL with TLM: only the resolutions needed were read
        pixels = imagecodecs.htj2k_decode(prefix.data, skipres=prefix.skip, planar=False)
        return Decoded(pixels, "htj2k-prefix", pixels.ndim == 3)
    data = stored_frame(src, index)
    level = min(level, decomposition_levels(data))
    pixels = imagecodecs.htj2k_decode(data, skipres=level or None, planar=False)
    return Decoded(pixels, "htj2k-skipres" if level else "full", pixels.ndim == 3)


def _jpeg_draft(src: PixelSource, index: int, want: tuple[int, int]) -> Decoded:
    image = Image.open(BytesIO(stored_frame(src, index)))
    image.draft(image.mode, want)
    image.load()
    pixels = np.asarray(image)
    return Decoded(pixels, "jpeg-draft", pixels.ndim == 3)


def _decimate_in_place(src: PixelSource, index: int, step: int) -> Decoded:
    ds = src.dataset
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.BitsAllocated)
    kind = "i" if int(ds.get("PixelRepresentation") or 0) == 1 else "u"
    dtype = np.dtype(f"<{kind}{bits // 8}")
    planar = samples > 1 and int(ds.get("PlanarConfiguration") or 0) == 1
    shape = (samples, rows, cols) if planar else (rows, cols, samples)
    assert src.offset is not None
    mapped = np.memmap(
        src.path, dtype=dtype, mode="r", offset=src.offset + index * src.frame_size, shape=shape
    )
    try:
        if planar:
            small = np.moveaxis(np.array(mapped[:, ::step, ::step]), 0, -1)
        else:
            small = np.array(mapped[::step, ::step, :])
    finally:
        del mapped
    if samples == 1:
        small = small[:, :, 0]
    small = _mask_bits(small, ds)
    return Decoded(small, "decimate" if step > 1 else "full", False)


def _mask_bits(pixels: np.ndarray, ds: object) -> np.ndarray:
    """Keep only the Bits Stored of each sample (sign-extended when signed)."""
    stored = int(getattr(ds, "BitsStored", 0) or 0)
    bits = pixels.dtype.itemsize * 8
    if not stored or stored >= bits:
        return pixels
    if pixels.dtype.kind == "u":
        return pixels & ((1 << stored) - 1)
    shift = bits - stored
    return (pixels << shift) >> shift


def _full(src: PixelSource, index: int, step: int) -> Decoded:
    try:
        pixels = pixel_array(str(src.path), index=index)
    except Exception as exc:
        raise InvalidDataset(f"the pixel data cannot be decoded: {exc}") from exc
    photometric = str(src.dataset.get("PhotometricInterpretation", ""))
    converted = photometric.startswith("YBR") and pixels.ndim == 3
    if step > 1:
        pixels = pixels[::step, ::step]
    return Decoded(pixels, "full", converted)
