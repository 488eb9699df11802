"""The compress part: lossless compression speed and ratio per syntax, CT sample and radiographs."""

from __future__ import annotations

import contextlib
import statistics
import time
import traceback
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from pydicom import dcmread

from bench.corpus import Corpus
from bench.radiographs import data_folder
from bench.settings import BenchSettings

RADIOGRAPHS = ("RG1_UNCR", "RG3_UNCR")  # pydicom-data's uncompressed CR images


@dataclass(frozen=True)
class Source:
    """Files compressed together for one row, and how often each one is compressed."""

    name: str
    image: str  # e.g. "512x512, 16 bits stored"
    files: tuple[Path, ...]
    repeats: int


@dataclass
class CompressRow:
    """One syntax on one source: bytes before and after, and the time it took."""

    source: str
    image: str
    syntax: str
    images: int
    original_bytes: int = 0  # pixel data, as decoded
    compressed_bytes: int = 0  # the encapsulated frames
    compress_s: float = 0.0  # `compress()`: encode, encapsulate, write, verify by decoding
    decode_s: float = 0.0  # reading the compressed object back to pixels
    error: str = ""

    @property
    def ratio(self) -> float | None:
        """Original pixel bytes per compressed byte."""
        return self.original_bytes / self.compressed_bytes if self.compressed_bytes else None

    @property
    def compress_mbps(self) -> float | None:
        """Megabytes of original pixel data compressed per second."""
        return self.original_bytes / self.compress_s / 1e6 if self.compress_s else None

    @property
    def decode_mbps(self) -> float | None:
        """Megabytes of original pixel data decoded back per second."""
        return self.original_bytes / self.decode_s / 1e6 if self.decode_s else None


def _describe(path: Path) -> str:
    ds = dcmread(path, stop_before_pixels=True)
    return f"{ds.Columns}x{ds.Rows}, {ds.BitsStored} bits stored"


def sources(settings: BenchSettings, corpus: Corpus) -> list[Source]:
    """An evenly spread sample of the CT corpus, then each radiograph on its own."""
    files = [f for study in corpus.studies for f in study.files]
    count = min(settings.compress_instances, len(files))
    sample = tuple(files[i * len(files) // count] for i in range(count))
    out = [Source(f"CT sample ({count} of {len(files)})", _describe(sample[0]), sample, 1)]
    folder = data_folder()
    for name in RADIOGRAPHS:
        path = folder / f"{name}.dcm"
        if not path.is_file():
            raise RuntimeError(f"{path} not found: install pydicom-data")
        out.append(Source(name, _describe(path), (path,), settings.compress_repeats))
    return out


def _once(raw: bytes, syntax: str) -> tuple[float, float, int, int]:
    """Compress the file's bytes once, then decode the result: both times and the sizes."""
    from hounsfield.imaging.compress import compress

    ds = dcmread(BytesIO(raw))  # parsed before the clock starts; pixels decoded inside
    started = time.perf_counter()
    result = compress(ds, syntax)
    compress_s = time.perf_counter() - started
    started = time.perf_counter()
    _ = dcmread(BytesIO(result.part10)).pixel_array
    decode_s = time.perf_counter() - started
    return compress_s, decode_s, result.original_bytes, result.compressed_bytes


def _row(source: Source, syntax: str) -> CompressRow:
    row = CompressRow(source.name, source.image, syntax, len(source.files))
    print(f"    {syntax}, {source.name} ...", end="", flush=True)
    try:
        for path in source.files:
            raw = path.read_bytes()
            runs = [_once(raw, syntax) for _ in range(source.repeats)]
            row.compress_s += statistics.median(r[0] for r in runs)
            row.decode_s += statistics.median(r[1] for r in runs)
            row.original_bytes += runs[0][2]
            row.compressed_bytes += runs[0][3]
        print(f" {row.compress_mbps:.1f} MB/s, ratio {row.ratio:.2f}", flush=True)
    except Exception as exc:
        print(f" FAILED\n      {str(exc).splitlines()[0]}", flush=True)
        row.error = f"{syntax} on {source.name}: {exc}\n{traceback.format_exc(limit=4)}"
    return row


def _warm_up(path: Path, syntaxes: tuple[str, ...]) -> None:
    """Load every codec once, so no row pays for a library's first use."""
    raw = path.read_bytes()
    for syntax in syntaxes:
        with contextlib.suppress(Exception):  # the measured call reports it
            _once(raw, syntax)


def measure(settings: BenchSettings, corpus: Corpus) -> list[CompressRow]:
    """Every lossless syntax on every source, in this process, one image at a time."""
    from hounsfield.imaging.compress import LOSSLESS

    print("\n== Lossless compression (hounsfield.imaging.compress.compress)", flush=True)
    chosen = sources(settings, corpus)
    _warm_up(chosen[0].files[0], LOSSLESS)
    return [_row(source, syntax) for source in chosen for syntax in LOSSLESS]
