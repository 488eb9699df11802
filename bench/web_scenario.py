"""The DICOMweb measurement sequence run against one server: STOW, QIDO, WADO, rendered."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from bench import dicom_ops as ops
from bench import http_ops as web
from bench import radiographs
from bench.steps import Context, median_by, timed

VIEWPORT = 512


def _is_orthanc(c: Context) -> bool:
    return c.server.name == "Orthanc"


def setup_ingest(c: Context) -> None:
    """Store the corpus over C-STORE (not reported) when the DIMSE part does not run."""
    s, files = c.server, [f for st in c.corpus.studies for f in st.files]
    done = timed(
        f"set-up: C-STORE {len(files)} instances, {c.settings.parallel} associations",
        lambda: ops.store(s.ae_title, s.port, files, c.settings.parallel, c.settings.timeout),
    )
    c.m.notes.append(
        f"web part alone: corpus stored beforehand by C-STORE ({done.per_second:.0f} inst/s, "
        "not reported)"
    )


def _ready(c: Context) -> None:
    url = f"{c.server.dicomweb_root}/studies?limit=1"
    seconds = timed("DICOMweb answering", lambda: web.wait_http(url, 60))
    c.m.notes.append(f"DICOMweb answered {seconds:.1f}s after the DIMSE part or set-up")
    if c.server.plugins:
        c.m.labels["plugins"] = ", ".join(Path(p).name for p in c.server.plugins)


def _read(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def _stow(c: Context) -> None:
    assert c.stow is not None
    blobs = _read(c.stow.studies[0].files)
    batch = c.settings.stow_batch
    with web.client(c.settings.timeout) as http:
        if _is_orthanc(c):
            done = timed(
                f"POST /instances x{len(blobs)}, one file each",
                lambda: web.post_instances(http, c.server.http_base, blobs),
            )
        else:
            batches = [blobs[i : i + batch] for i in range(0, len(blobs), batch)]
            done = timed(
                f"STOW-RS {len(blobs)} instances, {len(batches)} requests of {batch}",
                lambda: web.stow(http, c.server.dicomweb_root, batches),
            )
    c.m.values |= {"stow_ips": done.per_second, "stow_mbps": done.mb_per_second}


def _qido(c: Context) -> None:
    runs = c.settings.qido_queries
    queries = [(st.patient_id, st.uid) for st in c.corpus.studies]
    with web.client(c.settings.timeout) as http:
        latency = timed(
            f"QIDO-RS /studies?PatientID= x{runs}, keep-alive",
            lambda: web.qido_latency(http, c.server.dicomweb_root, queries, runs),
        )
    c.m.values |= {"qido_ms": latency.median_ms, "qido_p90_ms": latency.p90_ms}
    if latency.wrong:
        c.m.notes.append(
            f"WARNING: {len(latency.wrong)} of {latency.runs} QIDO-RS answers wrong (timed all "
            f"the same); first: {latency.wrong[0]}"
        )


def _wado(c: Context) -> None:
    study = c.corpus.studies[0]
    series = study.series[0]
    url = f"{c.server.dicomweb_root}/studies/{study.uid}/series/{series.uid}"
    with web.client(c.settings.timeout) as http:
        got = median_by(
            f"WADO-RS series of {len(series.files)}",
            c.settings.wado_repeats,
            lambda: web.wado_retrieve(http, url, len(series.files)),
            lambda r: r.seconds,
        )
    c.m.values |= {"wado_s": got.seconds, "wado_mbps": got.mb_per_second}


def _metadata_prebuilt(c: Context, study_uid: str) -> str:
    if _is_orthanc(c):
        return ""
    found = list((c.server.folder / "metadata").rglob(f"{study_uid}.idx.json"))
    return "already built by the work queue" if found else "not built yet"


def _metadata(c: Context) -> None:
    study = c.corpus.studies[0]
    count = len(study.files)
    url = f"{c.server.dicomweb_root}/studies/{study.uid}/metadata"
    state = _metadata_prebuilt(c, study.uid)
    with web.client(c.settings.timeout) as http:
        cold, size = timed(
            f"WADO-RS metadata of {count} instances, first", lambda: web.metadata(http, url, count)
        )
        warm = [
            timed(
                f"WADO-RS metadata ({i + 1}/{c.settings.metadata_repeats})",
                lambda: web.metadata(http, url, count),
            )[0]
            for i in range(c.settings.metadata_repeats)
        ]
    c.m.values |= {
        "meta_cold_ms": cold * 1000,
        "meta_ms": statistics.median(warm) * 1000,
        "meta_mb": size / 1e6,
    }
    if state:
        c.m.notes.append(f"study metadata document before the first request: {state}")


def _store_radiographs(c: Context, rads: list[radiographs.Radiograph]) -> None:
    with web.client(c.settings.timeout) as http:
        for rad in rads:
            if _is_orthanc(c):
                web.post_instance_id(http, c.server.http_base, rad.blob())
            else:
                web.stow(http, c.server.dicomweb_root, [[rad.blob()]])


def _cold(c: Context, http: httpx.Client, rounds: list[list[radiographs.Radiograph]]) -> None:
    """One request per stored object: round 0 the original files, then fresh-UID copies."""
    samples: dict[str, list[web.Rendered]] = {}
    for number, rads in enumerate(rounds):
        for rad in rads:
            url = c.server.dicomweb_root + rad.rendered_path(VIEWPORT)
            got = timed(
                f"rendered {rad.name}, first request of copy {number}",
                partial(web.rendered, http, url),
            )
            samples.setdefault(rad.name, []).append(got)
    for name, runs in samples.items():
        first = runs[0]
        ms = sorted(r.seconds * 1000 for r in runs)
        c.m.values[f"render_cold_ms:{name}"] = statistics.median(ms)
        shape = f"{first.size[0]}x{first.size[1]} " if first.size else ""
        c.m.labels[f"render_bytes:{name}"] = (
            f"{shape}{first.media_type}, {first.nbytes:,} bytes; first requests "
            f"{', '.join(f'{x:.0f}' for x in (r.seconds * 1000 for r in runs))} ms"
        )
        if first.rendered_by:
            c.m.labels[f"render:{name}"] = f"first by {first.rendered_by}"


def _render(c: Context) -> None:
    originals = radiographs.load()
    copies = c.settings.render_copies - 1
    rounds = [originals] + [[radiographs.copy(r) for r in originals] for _ in range(copies)]
    everything = [r for rads in rounds for r in rads]
    timed(
        f"store {len(everything)} CR radiographs ({len(rounds)} copies) over HTTP",
        lambda: _store_radiographs(c, everything),
    )
    with web.client(c.settings.timeout) as http:
        _cold(c, http, rounds)
        for rad in originals:
            url = c.server.dicomweb_root + rad.rendered_path(VIEWPORT)
            warm = [web.rendered(http, url) for _ in range(c.settings.render_repeats)]
            middle = sorted(warm, key=lambda r: r.seconds)[len(warm) // 2]
            c.m.values[f"render_warm_ms:{rad.name}"] = middle.seconds * 1000
            if middle.rendered_by:
                label = c.m.labels.get(f"render:{rad.name}", "")
                c.m.labels[f"render:{rad.name}"] = f"{label}, then by {middle.rendered_by}"


def _decode(c: Context) -> None:
    """Hounsfield's reduced-resolution versus full decode, in the bench process."""
    if _is_orthanc(c):
        return
    from hounsfield.imaging.measure import decode_times

    for rad in radiographs.load():
        t = timed(
            f"decode_times {rad.name} (bench process)",
            partial(decode_times, rad.path, size=VIEWPORT, repeat=3),
        )
        c.m.values |= {
            f"decode_reduced_ms:{rad.name}": t.reduced_decode * 1000,
            f"decode_full_ms:{rad.name}": t.full_decode * 1000,
            f"decode_render_ms:{rad.name}": t.rendered * 1000,
        }
        c.m.labels[f"decode_method:{rad.name}"] = t.method


STEPS: tuple[tuple[str, Callable[[Context], None]], ...] = (
    ("DICOMweb ready", _ready),
    ("STOW-RS / POST /instances", _stow),
    ("QIDO-RS", _qido),
    ("WADO-RS series", _wado),
    ("WADO-RS metadata", _metadata),
    ("rendered", _render),
    ("decode times", _decode),
)
FATAL = (setup_ingest, _ready)
