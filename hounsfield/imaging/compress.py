"""Compress pixel data: lossless JPEG 2000 (with resolution levels), JPEG-LS, HTJ2K and HTJ2K RPCL,
lossy JPEG 2000 at a ratio; each frame encoded on its own, then verified by decoding it back."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO

import imagecodecs
import jpeg_ls
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    UID,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from hounsfield.errors import ArchiveError
from hounsfield.imaging.codestream import SMALLEST, rpcl_problems

MAX_LEVELS = 5
SYNTAXES: dict[str, UID] = {
    "jpeg2000-lossless": JPEG2000Lossless,
    "jpeg-ls-lossless": JPEGLSLossless,
    "htj2k-lossless": HTJ2KLossless,
    "htj2k-lossless-rpcl": HTJ2KLosslessRPCL,
    "jpeg2000": JPEG2000,
}
LOSSLESS = ("jpeg2000-lossless", "jpeg-ls-lossless", "htj2k-lossless", "htj2k-lossless-rpcl")
LOSSLESS_SOURCES = {
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    RLELossless,
}
_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR")


class Unsupported(ArchiveError):
    """The object has no pixel data this codec can take; it stays as it is."""


class VerificationFailed(ArchiveError):
    """The compressed pixels differ from the original ones; the original is kept."""


@dataclass(frozen=True)
class Compressed:
    """A compressed copy of a dataset and what it cost."""

    dataset: Dataset
    part10: bytes  # what was verified, as a Part-10 file (explicit VR little endian)
    syntax: UID
    original_bytes: int
    compressed_bytes: int

    @property
    def ratio(self) -> float:
        """Original pixel bytes per compressed byte."""
        return self.original_bytes / max(self.compressed_bytes, 1)


def syntax_of(name: str) -> UID:
    """The transfer syntax of a compression name, or Unsupported."""
    try:
        return SYNTAXES[name]
    except KeyError:
        raise Unsupported(
            f"unknown compression {name!r}; use one of {', '.join(SYNTAXES)}"
        ) from None


def levels(rows: int, cols: int) -> int:
    """Wavelet decomposition levels for a frame: as many as its size allows, up to five, so a
    reader can decode 1/2, 1/4 … 1/32 of the size without decoding the whole."""
    return max(1, min(MAX_LEVELS, int(math.log2(max(min(rows, cols), 2)))))


def rpcl_levels(rows: int, cols: int) -> int:
    """The fewest decomposition levels that bring the lowest resolution to 64 pixels or less."""
    return max(0, math.ceil(math.log2(max(rows, cols) / SMALLEST)))


def _check(ds: Dataset) -> None:
    if "PixelData" not in ds:
        raise Unsupported("no Pixel Data")
    bits = int(ds.get("BitsAllocated", 0))
    if bits not in (8, 16):
        raise Unsupported(f"{bits} bits allocated")
    if int(ds.get("SamplesPerPixel", 1)) not in (1, 3):
        raise Unsupported("neither 1 nor 3 samples per pixel")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in _PHOTOMETRIC:
        raise Unsupported(f"photometric interpretation {photometric}")
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax.is_compressed and syntax not in LOSSLESS_SOURCES:
        raise Unsupported(f"stored as {syntax.name}, which may be lossy")
    if ds.get("LossyImageCompression") == "01":
        raise Unsupported("already lossy compressed once")


def _frames(ds: Dataset) -> np.ndarray:
    pixels = ds.pixel_array
    pixels = pixels.astype(pixels.dtype.newbyteorder("="), copy=False)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return pixels if frames > 1 else pixels[np.newaxis, ...]


def _encode(frame: np.ndarray, name: str, bits: int, level: int | None) -> bytes:
    rows, cols = frame.shape[:2]
    if name == "jpeg-ls-lossless":
        if frame.dtype.kind == "i":  # JPEG-LS codes the bits as unsigned (PS3.5 A.4.3)
            frame = frame.view(frame.dtype.str.replace("i", "u")) & ((1 << bits) - 1)
        samples = frame.shape[2] if frame.ndim == 3 else 1
        return bytes(
            jpeg_ls.encode_buffer(
                np.ascontiguousarray(frame, dtype=frame.dtype.newbyteorder("<")).tobytes(),
                rows,
                cols,
                samples,
                bits,
                interleave_mode=2 if samples == 3 else None,
            )
        )
    if name == "htj2k-lossless":
        return bytes(
            imagecodecs.htj2k_encode(
                np.ascontiguousarray(frame), reversible=True, resolutions=levels(rows, cols)
            )
        )
    if name == "htj2k-lossless-rpcl":
        return _rpcl(frame)
    return bytes(
        imagecodecs.jpeg2k_encode(
            np.ascontiguousarray(frame),
            level=level if level is not None else 0,
            codecformat="J2K",
            reversible=level is None,
            resolutions=levels(rows, cols) + 1,  # OpenJPEG counts resolutions, not levels
            bitspersample=bits,
            mct=False,
        )
    )


def _rpcl(frame: np.ndarray) -> bytes:
    """HTJ2K in RPCL order with TLM and one tile-part per resolution (PS3.5 10.18), checked."""
    code = bytes(
        imagecodecs.htj2k_encode(
            np.ascontiguousarray(frame),
            reversible=True,
            rgb=False,  # no colour transform: the photometric interpretation stays as it is
            resolutions=rpcl_levels(*frame.shape[:2]),
            tlm=True,
            tilepart=imagecodecs.HTJ2K.TILEPART.RESOLUTIONS,
        )
    )
    problems = rpcl_problems(code)
    if problems:
        raise VerificationFailed(f"the encoder wrote no HTJ2K RPCL: {'; '.join(problems)}")
    return code


def _lossy(frame: np.ndarray, bits: int, ratio: float) -> bytes:
    """The best-quality lossy code stream at least `ratio` times smaller than the frame."""
    low, high = 1, 120  # the encoder's quality (PSNR, dB): higher is bigger
    best = _encode(frame, "jpeg2000", bits, low)
    while high - low > 1:
        middle = (low + high) // 2
        code = _encode(frame, "jpeg2000", bits, middle)
        if frame.nbytes / len(code) >= ratio:
            best, low = code, middle
        else:
            high = middle
    return best


def compress(ds: Dataset, name: str, *, ratio: float | None = None) -> Compressed:
    """A copy of `ds` compressed with `name`, verified: pixel-exact for the lossless ones."""
    syntax = syntax_of(name)
    _check(ds)
    if UID(ds.file_meta.TransferSyntaxUID) == syntax:
        raise Unsupported(f"already {syntax.name}")
    lossy = name not in LOSSLESS
    if lossy and (ratio is None or ratio <= 1):
        raise Unsupported("lossy compression needs a ratio above 1")
    try:
        original = _frames(ds)
    except Exception as exc:
        raise Unsupported(f"the pixel data cannot be decoded: {exc}") from exc
    bits = int(ds.BitsStored)
    try:
        codes = [
            _lossy(frame, bits, ratio) if lossy else _encode(frame, name, bits, None)  # type: ignore[arg-type]
            for frame in original
        ]
    except (ValueError, RuntimeError, imagecodecs.DelayedImportError) as exc:
        raise Unsupported(f"the encoder refused the pixels: {exc}") from exc
    out = copy.deepcopy(ds)  # setting an attribute changes a shared element in place
    out.PixelData = encapsulate(codes, has_bot=len(codes) > 1)
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True
    out.file_meta.TransferSyntaxUID = syntax
    if int(ds.get("SamplesPerPixel", 1)) == 3:
        out.PlanarConfiguration = 0
    out.set_original_encoding(False, True, ds.original_character_set)
    compressed = sum(len(c) for c in codes)
    if lossy:
        _mark_lossy(out, ds, original.nbytes / compressed)
    buf = BytesIO()
    try:
        out.save_as(buf, enforce_file_format=True, implicit_vr=False, little_endian=True)
    except Exception as exc:  # attributes that explicit VR cannot carry
        raise Unsupported(f"the compressed object cannot be encoded: {exc}") from exc
    _verify(buf.getvalue(), original, exact=not lossy)
    return Compressed(out, buf.getvalue(), syntax, int(original.nbytes), compressed)


def _mark_lossy(out: Dataset, ds: Dataset, ratio: float) -> None:
    """Lossy compression makes a new image (PS3.3 C.7.6.1.1.5): new UID, lossy attributes."""
    source = Dataset()
    source.ReferencedSOPClassUID = ds.SOPClassUID
    source.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    out.SourceImageSequence = Sequence([source])
    out.SOPInstanceUID = generate_uid()
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    out.LossyImageCompression = "01"
    previous_ratio = list(ds.get("LossyImageCompressionRatio") or [])
    previous_method = list(ds.get("LossyImageCompressionMethod") or [])
    out.LossyImageCompressionRatio = [*previous_ratio, f"{ratio:.2f}"[:16]]
    out.LossyImageCompressionMethod = [*previous_method, "ISO_15444_1"]
    image_type = list(ds.get("ImageType") or ["DERIVED", "SECONDARY"])
    out.ImageType = ["DERIVED", *image_type[1:]]
    out.DerivationDescription = f"Lossy JPEG 2000 compression {ratio:.1f}:1"[:1024]
    out.InstanceCreationDate = datetime.now(UTC).strftime("%Y%m%d")


def _verify(part10: bytes, original: np.ndarray, *, exact: bool) -> None:
    """Decode what will be written, as a reader will, and compare it to the original pixels."""
    try:
        decoded = _frames(dcmread(BytesIO(part10)))
    except Exception as exc:
        raise VerificationFailed(f"the compressed pixels cannot be decoded: {exc}") from exc
    if decoded.shape != original.shape:
        raise VerificationFailed(f"decoded shape {decoded.shape} is not {original.shape}")
    if exact and not np.array_equal(decoded, original):
        raise VerificationFailed("decoded pixels differ from the original")
