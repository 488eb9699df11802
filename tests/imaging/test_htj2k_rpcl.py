"""HTJ2K Lossless RPCL: the codestream's markers as PS3.5 10.18 asks, pixel-exact round trips,
and reduced previews decoded from a prefix read alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import HTJ2KLosslessRPCL

from hounsfield.imaging.codestream import rpcl_problems
from hounsfield.imaging.compress import compress, rpcl_levels
from hounsfield.imaging.decode import decode_frame
from hounsfield.imaging.pixels import open_source, stored_frame
from hounsfield.imaging.progressive import resolution_prefix
from tests.data import local

ORDERS = ("LRCP", "RLCP", "RPCL", "PCRL", "CPRL")


@dataclass
class Walk:
    """What a plain walk of a codestream's markers found."""

    size: tuple[int, int] = (0, 0)
    order: str = ""
    levels: int = 0
    reversible: bool = False
    tlm: list[int] = field(default_factory=list)  # tile-part lengths
    tile_parts: list[tuple[int, int, int, int]] = field(
        default_factory=list
    )  # tile, index, count, length
    end: int = 0


def _markers(code: bytes) -> Walk:
    """A plain walk of the codestream's markers, written apart from the archive's own reader."""
    assert code[:2] == b"\xff\x4f"  # SOC
    walk = Walk()
    pos = 2
    while True:
        marker = int.from_bytes(code[pos : pos + 2], "big")
        size = int.from_bytes(code[pos + 2 : pos + 4], "big")
        body = code[pos + 4 : pos + 2 + size]
        if marker == 0xFF51:  # SIZ: Xsiz, Ysiz after Rsiz
            walk.size = (int.from_bytes(body[2:6], "big"), int.from_bytes(body[6:10], "big"))
        elif marker == 0xFF52:  # COD: Scod, progression order, layers, MCT, levels ...
            walk.order, walk.levels, walk.reversible = ORDERS[body[1]], body[5], body[9] == 1
        elif marker == 0xFF55:  # TLM with Stlm 0x60: 16-bit tile-part index, 32-bit length
            assert body[1] == 0x60
            walk.tlm += [int.from_bytes(body[i + 2 : i + 6], "big") for i in range(2, size - 2, 6)]
        elif marker == 0xFF90:  # SOT: Isot, Psot, TPsot, TNsot
            psot = int.from_bytes(body[2:6], "big")
            walk.tile_parts.append((int.from_bytes(body[0:2], "big"), body[6], body[7], psot))
            pos += psot
            continue
        elif marker == 0xFFD9:  # EOC
            walk.end = pos + 2
            return walk
        pos += 2 + size


def _rpcl_file(tmp_path: Path, name: str) -> tuple[Path, np.ndarray]:
    ds = dcmread(local(name))
    done = compress(ds, "htj2k-lossless-rpcl")
    path = tmp_path / f"{name}.rpcl.dcm"
    path.write_bytes(done.part10)
    return path, ds.pixel_array


def test_rg3_codestream_is_rpcl_with_tlm_and_a_tile_part_per_resolution(tmp_path: Path) -> None:
    path, original = _rpcl_file(tmp_path, "RG3_UNCR.dcm")
    ds = dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == HTJ2KLosslessRPCL
    assert np.array_equal(ds.pixel_array, original)
    (code,) = generate_frames(ds.PixelData, number_of_frames=1)
    assert np.array_equal(imagecodecs.htj2k_decode(code), original)
    walk = _markers(code)
    width, height = walk.size
    levels = walk.levels
    assert (width, height) == (original.shape[1], original.shape[0])
    assert walk.order == "RPCL" and walk.reversible
    assert max(-(-width // 2**levels), -(-height // 2**levels)) <= 64
    assert max(width, height) / 2 ** (levels - 1) > 64  # no more levels than needed
    parts = walk.tile_parts  # one tile, one tile-part per resolution, in order
    expected = [(0, i, levels + 1) for i in range(levels + 1)]
    assert [(tile, index, count) for tile, index, count, _n in parts] == expected
    assert walk.tlm == [length for _t, _i, _c, length in parts]
    assert walk.end == len(code.rstrip(b"\x00"))
    assert rpcl_problems(code) == []


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "SC_rgb.dcm", "RG1_UNCR.dcm"]
)
def test_round_trip_is_pixel_exact_and_conforming(name: str) -> None:
    ds = dcmread(local(name))
    done = compress(ds, "htj2k-lossless-rpcl")
    back = dcmread(BytesIO(done.part10))
    assert back.file_meta.TransferSyntaxUID == HTJ2KLosslessRPCL
    assert np.array_equal(back.pixel_array, ds.pixel_array)
    frames = int(ds.get("NumberOfFrames") or 1)
    for code in generate_frames(back.PixelData, number_of_frames=frames):
        assert rpcl_problems(code) == []
        walk = _markers(code)
        assert walk.order == "RPCL" and walk.tlm


def test_a_plain_htj2k_codestream_is_refused_by_the_check() -> None:
    pixels = dcmread(local("CT_small.dcm")).pixel_array
    plain = bytes(imagecodecs.htj2k_encode(pixels, reversible=True, resolutions=5))
    problems = rpcl_problems(plain)
    assert "no TLM marker" in problems and any("tile-parts" in p for p in problems)
    assert rpcl_problems(b"not a codestream") != []


def test_levels_bring_the_lowest_resolution_to_64_pixels() -> None:
    assert [rpcl_levels(n, n) for n in (1, 64, 65, 128, 512, 513, 3036)] == [0, 0, 1, 1, 3, 4, 6]
    assert rpcl_levels(3, 600) == 4


def test_prefix_decodes_like_the_whole_codestream_at_that_level(tmp_path: Path) -> None:
    path, original = _rpcl_file(tmp_path, "RG3_UNCR.dcm")
    src = open_source(path)
    whole = stored_frame(src, 0)
    levels = _markers(whole).levels
    sizes = {}
    for skip in range(1, levels + 1):
        prefix = resolution_prefix(src, 0, skip)
        assert prefix is not None and prefix.skip == skip and prefix.whole == len(whole)
        assert whole.startswith(prefix.data[:-2])
        reduced = imagecodecs.htj2k_decode(prefix.data, skipres=skip)
        assert np.array_equal(reduced, imagecodecs.htj2k_decode(whole, skipres=skip))
        sizes[skip] = len(prefix.data)
    assert sizes[1] < len(whole) / 3 and sizes[2] < len(whole) / 10 and sizes[3] < len(whole) / 30
    deepest = resolution_prefix(src, 0, 99)
    assert deepest is not None and deepest.skip == levels

    rows, cols = original.shape
    decoded = decode_frame(src, 0, (cols // 4, rows // 4))
    assert decoded.method == "htj2k-prefix"
    assert np.array_equal(decoded.pixels, imagecodecs.htj2k_decode(whole, skipres=2))
    assert decode_frame(src, 0, None).method == "full"


def test_signed_ct_preview_from_a_prefix(tmp_path: Path) -> None:
    path, original = _rpcl_file(tmp_path, "CT_small.dcm")
    src = open_source(path)
    decoded = decode_frame(src, 0, (64, 64))
    whole = stored_frame(src, 0)
    assert decoded.method == "htj2k-prefix" and decoded.pixels.dtype == original.dtype
    assert np.array_equal(decoded.pixels, imagecodecs.htj2k_decode(whole, skipres=1))


def test_prefix_needs_rpcl_with_tlm(tmp_path: Path) -> None:
    ds = dcmread(local("RG1_UNCR.dcm"))
    path = tmp_path / "plain.dcm"
    path.write_bytes(compress(ds, "htj2k-lossless").part10)
    src = open_source(path)
    assert resolution_prefix(src, 0, 2) is None
    assert decode_frame(src, 0, (256, 256)).method == "htj2k-skipres"


def test_fragments_are_mapped_from_the_file_without_reading_pixels(tmp_path: Path) -> None:
    names = ("SC_rgb_rle_2frame.dcm", "RG3_J2KR.dcm", "emri_small_jpeg_2k_lossless.dcm")
    paths = [local(n) for n in names]
    # Two fragments per frame, found through the Basic Offset Table.
    ds = dcmread(local("emri_small_jpeg_2k_lossless.dcm"))
    codes = list(generate_frames(ds.PixelData, number_of_frames=10))
    ds.PixelData = encapsulate(codes, fragments_per_frame=2, has_bot=True)
    paths.append(tmp_path / "split.dcm")
    ds.save_as(paths[-1], enforce_file_format=True)
    for path in paths:
        src = open_source(path)
        full = dcmread(path)
        frames = int(full.get("NumberOfFrames") or 1)
        assert src.extents is not None and "PixelData" not in src.dataset
        expected = list(generate_frames(full.PixelData, number_of_frames=frames))
        assert [stored_frame(src, i) for i in range(frames)] == expected
    assert [len(e) for e in open_source(paths[-1]).extents or []] == [2] * 10
