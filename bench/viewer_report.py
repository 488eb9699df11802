"""RESULTS.md section of the viewer part, placed into the text the other parts produced."""

from __future__ import annotations

from bench.viewer_part import ViewerResults
from bench.viewer_sites import CASES, RADIOGRAPH, SITES

ORTHANC, PROGRESSIVE = SITES[2], SITES[0]
# The timeline's milestones (seconds from navigation), in the order they happen.
MARKS = (
    ("app", "App ready"),
    ("qido", "QIDO done"),
    ("metadata", "Metadata done"),
    ("frame_request", "Frame requested"),
    ("frame_bytes", "First frame bytes"),
    ("paint", "First image"),
)


def _num(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None else "n/a"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value is not None and base else "n/a"


def _rows(res: ViewerResults, case: str) -> list[str]:
    def med(site: str, attr: str) -> float | None:
        return res.median(site, case, attr)

    out = []
    for site in SITES:
        first_b, full_b = med(site, "first_bytes"), med(site, "full_bytes")
        share = f"{100 * first_b / full_b:.1f}%" if first_b is not None and full_b else "n/a"
        out.append(
            f"| {case} | {site} | {_num(med(site, 'first_s'), '.2f')} | "
            f"{_num(med(site, 'first_from_request_s'), '.2f')} | "
            f"{_ratio(med(site, 'first_from_request_s'), med(ORTHANC, 'first_from_request_s'))} | "
            f"{_num(first_b, ',.0f')} | {share} | {_num(med(site, 'full_s'), '.2f')} | "
            f"{_num(full_b, ',.0f')} | {_num(med(site, 'all_frame_bytes'), ',.0f')} | "
            f"{_num(med(site, 'requests'), '.0f')} |"
        )
    return out


def _timeline(res: ViewerResults, case: str) -> list[str]:
    out = []
    for site in SITES:
        marks = [_num(res.median(site, case, f"marks.{key}"), ".2f") for key, _ in MARKS]
        server = res.median(site, case, "server_s")
        load = res.median(site, case, "load")
        out.append(
            f"| {case} | {site} | {' | '.join(marks)} | "
            f"{_num(None if server is None else server * 1000, '.0f')} | {_num(load, '.1f')} |"
        )
    return out


def _targets(res: ViewerResults, case: str) -> list[str]:
    def med(site: str, attr: str) -> float | None:
        return res.median(site, case, attr)

    def fifth(attr: str) -> tuple[str, str]:
        mine, base = med(PROGRESSIVE, attr), med(ORTHANC, attr)
        ok = mine <= base / 5 if mine is not None and base else None
        return f"{_num(mine, '.2f')} s vs {_num(base, '.2f')} s ({_ratio(mine, base)})", _mark(ok)

    first_b, full_b = med(PROGRESSIVE, "first_bytes"), med(PROGRESSIVE, "full_bytes")
    small = first_b <= full_b / 10 if first_b is not None and full_b else None
    share = f" ({100 * first_b / full_b:.1f}%)" if first_b is not None and full_b else ""
    delivery, delivery_mark = fifth("first_from_request_s")
    whole, whole_mark = fifth("first_s")
    return [
        f"| {case} | first image at most 1/5 of Orthanc's time, from the request for the "
        f"shown frame's pixels (the target's figure) | {delivery} | {delivery_mark} |",
        f"| {case} | the same from navigation (for reference) | {whole} | {whole_mark} |",
        f"| {case} | first image from at most 10% of the shown frame's bytes | "
        f"{_num(first_b, ',.0f')} of {_num(full_b, ',.0f')} B{share} | {_mark(small)} |",
    ]


def sections(res: ViewerResults) -> list[str]:
    """The result tables."""
    out = [
        f"### Viewer: OHIF in Chromium, {res.mbit:g} Mbit/s and {res.latency_ms:g} ms",
        "",
        f"Median of {res.runs} openings per case and site. First image: seconds from "
        "navigation to the study, and from the first request for the shown frame's pixels "
        "(what the archive's delivery controls); ratio = the latter over Orthanc's. Bytes are "
        "response bodies: of the shown frame, what its first image was decoded from and the "
        "whole frame; of every frame of the study (a series is prefetched) by full quality.",
        "",
        "| Case | Site | First image (s) | From frame request (s) | Ratio | First-image bytes | "
        "Share | Full quality (s) | Frame bytes | Study frame bytes | Frame requests |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in CASES:
        out += _rows(res, case)
    out += [
        "",
        "Where the time goes (median seconds from navigation; server: milliseconds from the "
        "server getting the first request for the shown frame to the start of its answer; "
        "load: the machine's 1-minute load average at the openings, 2 cores):",
        "",
        f"| Case | Site | {' | '.join(label for _, label in MARKS)} | Server (ms) | Load |",
        "|---|---|" + "---:|" * (len(MARKS) + 2),
    ]
    for case in CASES:
        out += _timeline(res, case)
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
        "they came; each copy's metadata document is built before it is opened, as the "
        "node's study processing does once a study has settled (60 s after its last "
        "change). Orthanc with its DICOMweb plugin gets the originals by REST and is opened "
        "through a same-origin front that serves OHIF and relays /dicom-web (the plugin sends "
        "no CORS headers), with OHIF's default data-source options. Headless Chromium "
        "(SwiftShader WebGL), one profile: each site is opened once unthrottled to cache OHIF "
        "and its decoders; every measured opening is a fresh copy of the study (new UIDs), "
        "with the network throttled by CDP Network.emulateNetworkConditions "
        f"({res.mbit:g} Mbit/s, {res.latency_ms:g} ms); run by run, each case is opened at "
        "the three sites in turn. Every request is followed through CDP Network events "
        "(sent, response, each body chunk, finished). App ready = the first DICOMweb request; "
        "QIDO and metadata done = the end of the last such request before the first image; "
        "the shown frame is the viewport's image (Cornerstone's current imageId); first "
        "image = the first render of that image by Cornerstone (its IMAGE_RENDERED event, at "
        "any quality), full quality = its first render at full resolution; a script in the "
        "page also samples a row and a column of the viewport canvas every 20 ms (kept in "
        "the per-opening JSON under bench/work/viewer/timelines/ with every request and the "
        "server's log).",
        "",
    ]


def insert(text: str, res: ViewerResults | None) -> str:
    """`text` with the viewer section before `## Method`, its method before `## Run remarks`
    and its errors and load at the end of the remarks."""
    if res is None:
        return text
    text = text.replace("## Method\n", "\n".join(sections(res)) + "\n## Method\n", 1)
    text = text.replace("## Run remarks\n", "\n".join(method(res)) + "\n## Run remarks\n", 1)
    remarks = "".join(f"- {e.splitlines()[0]}\n" for e in res.errors)
    if len(res.load) == 2:
        remarks += (
            f"- Viewer part: 1-minute load average {res.load[0]:.2f} before, "
            f"{res.load[1]:.2f} after (the machine has 2 CPUs)\n"
        )
    return text.replace("## Run remarks\n\n", "## Run remarks\n\n" + remarks, 1)


def text(res: ViewerResults) -> str:
    """A plain summary for the console."""
    return "\n".join(sections(res))
