"""The DICOMweb part of RESULTS.md: method, Hounsfield's decode table and render remarks."""

from __future__ import annotations

import httpx

from bench.corpus import Corpus
from bench.radiographs import NAMES as RADIOGRAPHS
from bench.settings import BenchSettings
from bench.steps import Measurements
from bench.web_scenario import VIEWPORT


def client_words(settings: BenchSettings) -> str:
    """What the report says about the HTTP client, if the web part ran."""
    if not settings.web:
        return ""
    return f", httpx {httpx.__version__} (HTTP/1.1, one keep-alive connection per step)"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def decode_table(hf: Measurements, settings: BenchSettings) -> list[str]:
    """Hounsfield's reduced-resolution versus full decode of each radiograph, if measured."""
    if not settings.web or not any(k.startswith("decode_full_ms:") for k in hf.values):
        return []
    out = [
        f"### Hounsfield decoding for a {VIEWPORT}-pixel viewport",
        "",
        "`hounsfield.imaging.measure.decode_times(path, size=512, repeat=3)` on the original "
        "files, in the benchmark process (best of 3, no cache).",
        "",
        "| File | Method | Reduced decode (ms) | Full decode (ms) | Full/reduced | "
        "Render, no cache (ms) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in RADIOGRAPHS:
        reduced = hf.values.get(f"decode_reduced_ms:{name}")
        full = hf.values.get(f"decode_full_ms:{name}")
        speedup = f"{full / reduced:.1f}x" if full and reduced else "n/a"
        method = hf.labels.get(f"decode_method:{name}", "n/a")
        render = hf.values.get(f"decode_render_ms:{name}")
        out.append(
            f"| {name} | {method} | {_ms(reduced)} | {_ms(full)} | {speedup} | {_ms(render)} |"
        )
    return [*out, ""]


def method(settings: BenchSettings, corpus: Corpus) -> list[str]:
    """The numbered description of the DICOMweb steps."""
    study = corpus.studies[0]
    series = len(study.series[0].files)
    alone = "" if settings.dimse else " (stored beforehand by C-STORE, not timed)"
    return [
        "DICOMweb part (Hounsfield under `/dicomweb`, Orthanc 1.10 with the Debian "
        "orthanc-dicomweb plugin under `/dicom-web`, and orthanc-gdcm when installed so that "
        "Orthanc can decode JPEG 2000); same corpus" + alone + ":",
        "",
        f"1. Ingest over HTTP: a separate cached corpus of {settings.stow_instances} CT instances "
        "(patient STOW001). Hounsfield: STOW-RS `POST /dicomweb/studies`, "
        f'`multipart/related; type="application/dicom"`, {settings.stow_batch} instances per '
        "request; Orthanc: `POST /instances`, one file per request. Bodies are read and built "
        "before the clock starts; one keep-alive connection; every answer is checked.",
        f"2. QIDO-RS: `GET /studies?PatientID=...` (same query on both, cycling through the "
        f"corpus patients), one warm-up then {settings.qido_queries} timed requests; each answer "
        "must be exactly the expected study.",
        f"3. WADO-RS: `GET /studies/{{study}}/series/{{series}}` of study 1's first series "
        f'({series} instances) with `Accept: multipart/related; type="application/dicom"; '
        "transfer-syntax=*` on both, body streamed to the end and its parts counted; MB/s is "
        f"the whole multipart body over wall time. Run {settings.wado_repeats} times, median "
        "kept.",
        f"4. Metadata: `GET /studies/{{study}}/metadata` of study 1 ({len(study.files)} "
        "instances): the first request is reported alone (Hounsfield builds a per-study "
        "document on first use unless its work queue already did; the remarks say which), "
        f"then {settings.metadata_repeats} more, median kept. The instance count is checked.",
        "5. Rendered: the pydicom-data radiographs RG1/RG3 (JPEG 2000 lossless, J2KR, and "
        "uncompressed, UNCR) are stored over HTTP, each also as "
        f"{settings.render_copies - 1} copies under new SOP Instance UIDs (same bytes "
        "otherwise), then "
        f"`GET .../studies/{{s}}/series/{{se}}/instances/{{i}}/rendered?viewport={VIEWPORT},"
        f"{VIEWPORT}` with `Accept: image/jpeg` — the same DICOMweb request on both (Orthanc "
        "through its DICOMweb plugin, not its core `/instances/{id}/rendered`). Cold figure "
        "(with the target): each stored object requested once, first request against first "
        f"request, median over the {settings.render_copies} objects per image (each sample "
        "is in the remarks; the very first one also pays one-time costs such as loading a "
        "codec). Hounsfield's on-disk render cache holds nothing for these objects then; "
        "Orthanc has no rendered-image cache, but its storage-area cache of DICOM files "
        "(128 MB by default) and, for JPEG 2000, the GDCM plugin's cache of its last decoded "
        f"image may help it. Then {settings.render_repeats} more requests of the originals "
        "give the repeat median, where Hounsfield answers from its render cache.",
        "",
    ]


def remarks(results: list[Measurements]) -> list[str]:
    """How each rendered image was produced and how big it was."""
    out: list[str] = []
    for m in results:
        for name in RADIOGRAPHS:
            how = m.labels.get(f"render:{name}")
            size = m.labels.get(f"render_bytes:{name}")
            if how or size:
                words = ", ".join(x for x in (size, f"X-Rendered-By {how}" if how else "") if x)
                out.append(f"- {m.server}: rendered {name}: {words}")
    return out
