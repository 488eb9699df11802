"""RESULTS.md section of the viewer part, placed into the text the other parts produced."""

from __future__ import annotations

from bench.viewer_part import ViewerResults
from bench.viewer_sites import CASES, RADIOGRAPH, SITES

ORTHANC, PROGRESSIVE = SITES[2], SITES[0]


def _num(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None else "n/a"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def _rows(res: ViewerResults, case: str) -> list[str]:
    base = res.median(ORTHANC, case, "first_s")
    out = []
    for site in SITES:
        first = res.median(site, case, "first_s")
        ratio = f"{first / base:.2f}" if first and base else "n/a"
        first_b, full_b = (res.median(site, case, a) for a in ("first_bytes", "full_bytes"))
        share = f"{100 * first_b / full_b:.1f}%" if first_b is not None and full_b else "n/a"
        out.append(
            f"| {case} | {site} | {_num(first, '.2f')} | {ratio} | {_num(first_b, ',.0f')} | "
            f"{share} | {_num(res.median(site, case, 'full_s'), '.2f')} | "
            f"{_num(full_b, ',.0f')} | {_num(res.median(site, case, 'requests'), '.0f')} |"
        )
    return out


def _targets(res: ViewerResults, case: str) -> list[str]:
    first = res.median(PROGRESSIVE, case, "first_s")
    base = res.median(ORTHANC, case, "first_s")
    first_b = res.median(PROGRESSIVE, case, "first_bytes")
    full_b = res.median(PROGRESSIVE, case, "full_bytes")
    fast = first <= base / 5 if first is not None and base else None
    small = first_b <= full_b / 10 if first_b is not None and full_b else None
    return [
        f"| {case} | first image at most 1/5 of Orthanc's time | "
        f"{_num(first, '.2f')} s vs {_num(base, '.2f')} s | {_mark(fast)} |",
        f"| {case} | first image from at most 10% of the bytes | "
        f"{_num(first_b, ',.0f')} of {_num(full_b, ',.0f')} B | {_mark(small)} |",
    ]


def sections(res: ViewerResults) -> list[str]:
    """The result tables."""
    out = [
        f"### Viewer: OHIF in Chromium, {res.mbit:g} Mbit/s and {res.latency_ms:g} ms",
        "",
        f"Median of {res.runs} openings per case; seconds from navigation to the study; bytes "
        "are frame response bodies received by then; ratio = first image / Orthanc's.",
        "",
        "| Case | Site | First image (s) | Ratio | First-image bytes | Share | "
        "Full quality (s) | Full bytes | Frame requests |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in CASES:
        out += _rows(res, case)
    out += [
        "",
        "Targets (Hounsfield .202):",
        "",
        "| Case | Target | Figures | |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        out += _targets(res, case)
    return [*out, ""]


def method(res: ViewerResults) -> list[str]:
    """How the viewer part measures."""
    return [
        f"Viewer part: {RADIOGRAPH} (1760 x 1760, 10 bits) from pydicom-data and a 100-image "
        "CT series of the synthetic corpus (512 x 512). Hounsfield runs in-process (SQLite "
        "index, uvicorn) twice: the studies compressed to HTJ2K Lossless RPCL (.202) and as "
        "they came; Orthanc with its DICOMweb plugin gets the originals by REST and is opened "
        "through a same-origin front that serves OHIF and relays /dicom-web (the plugin sends "
        "no CORS headers), with OHIF's default data-source options. Headless Chromium "
        "(SwiftShader WebGL), one profile: each site is opened once unthrottled to cache OHIF "
        "and its decoders; every measured opening is a fresh copy of the study (new UIDs), "
        "with the network throttled by CDP Network.emulateNetworkConditions "
        f"({res.mbit:g} Mbit/s, {res.latency_ms:g} ms). A script in the page samples the "
        "viewport canvas every 20 ms; first image = the first non-blank sample; full quality "
        "= the last canvas change or the end of the last frame request (whichever is later) "
        "once the frame requests have been idle 1.5 s; bytes from CDP Network.dataReceived.",
        "",
    ]


def insert(text: str, res: ViewerResults | None) -> str:
    """`text` with the viewer section before `## Method`, its method before `## Run remarks`
    and its errors at the end of the remarks."""
    if res is None:
        return text
    text = text.replace("## Method\n", "\n".join(sections(res)) + "\n## Method\n", 1)
    text = text.replace("## Run remarks\n", "\n".join(method(res)) + "\n## Run remarks\n", 1)
    errors = "".join(f"- {e.splitlines()[0]}\n" for e in res.errors)
    return text.replace("## Run remarks\n\n", "## Run remarks\n\n" + errors, 1)


def text(res: ViewerResults) -> str:
    """A plain summary for the console."""
    return "\n".join(sections(res))
