"""The app-config.js OHIF reads at start: one DICOMweb data source per partition of this node."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from hounsfield.catalog.partitions import Partition

# OHIF draws this instead of its logo (study list and viewer header): the node's name and a
# link to the admin pages.
LOGO = """function (React) {
    return React.createElement('div', {className: 'flex items-center gap-3 text-white'},
      React.createElement('a', {href: '/', className: 'text-lg font-semibold'}, 'Hounsfield'),
      React.createElement('a', {href: '/ui/', target: '_self', 'data-cy': 'hounsfield-admin',
        className: 'text-primary text-sm underline'}, 'Admin'));
  }"""

ERRORS = """function (error) {
    console.warn('DICOMweb request failed', error && error.status);
  }"""


def source_name(partition: Partition | str) -> str:
    """The name of a partition's data source (given it or its AE title) in OHIF's URLs:
    /viewer/{name}?StudyInstanceUIDs=…, /?datasources={name}."""
    title = partition.ae_title if isinstance(partition, Partition) else partition
    return re.sub(r"[^a-z0-9_-]+", "-", title.strip().lower()).strip("-") or "pacs"


def study_link(study_uid: str, ae_title: str | None = None, default: str | None = None) -> str:
    """The path that opens a study in the viewer: /viewer?StudyInstanceUIDs=… for the default
    partition (or when `ae_title` is None), /viewer/{source}?StudyInstanceUIDs=… for another."""
    query = urlencode({"StudyInstanceUIDs": study_uid})
    if ae_title is None or ae_title == default:
        return f"/viewer?{query}"
    return f"/viewer/{source_name(ae_title)}?{query}"


# Cornerstone's byte-range stages for stacks: the first 16 KB of each frame, then up to 64 KB,
# each decoded at a reduced resolution (an HTJ2K RPCL frame's first tile-parts are a small
# complete image), then the rest of the frame in one more request, joined to the first bytes
# and decoded in full. Cornerstone picks the level to decode from the share of the frame that
# has arrived (1/8 size up to about 3.5%, 1/4 up to about 8%, 1/2 up to about 27%, else full
# size); a lossless RPCL frame holds its 1/8 and 1/4 sizes in about 2-2.5% and 6.5-7.5% of its
# bytes, so one range of a fixed size suits frames of some sizes only. Two small ranges fit
# the usual ones: 16 KB is 7.6% of a 512 x 512 CT frame (about 215 KB), more than its quarter
# size needs (6.6%); 64 KB is 7.4% of a 2k radiograph (about 890 KB), nearly all its quarter
# size needs (7.6%), and its first 16 KB already give an eighth-size preview. A 64 KB first
# range was 30% of the CT frame: Cornerstone decoded it at full size from a third of the data,
# and drew that only when the decode ended before the rest of the frame came. OHIF's default
# instead streams each frame and decodes it again every 128 KB at a level guessed the same way;
# on lossless radiographs those guesses ask for a level that has not arrived yet and the first
# image waits for most of the frame. Frames in other syntaxes are not decoded from the first
# ranges: they cost more requests each.
FIRST_RANGE = 16 * 1024
STACK_RETRIEVE = {
    "stages": [
        {"id": "lossyFirst", "retrieveType": "singleFirst"},
        {"id": "lossySecond", "retrieveType": "singleSecond"},
        {"id": "finalSequential", "retrieveType": "singleFinal"},
    ],
    "retrieveOptions": {
        # rangeIndex n asks for the bytes up to (n + 1) x chunkSize
        "singleFirst": {"rangeIndex": 0, "chunkSize": FIRST_RANGE, "decodeLevel": 3},
        "singleSecond": {"rangeIndex": 3, "chunkSize": FIRST_RANGE, "decodeLevel": 3},
        "singleFinal": {"rangeIndex": -1},
    },
}


def data_source(partition: Partition, root: str) -> dict[str, Any]:
    """An OHIF DICOMweb data source for a partition whose DICOMweb root is `root`."""
    title = partition.ae_title
    return {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": source_name(partition),
        "configuration": {
            "friendlyName": f"{title} ({partition.description})"
            if partition.description
            else title,
            "name": source_name(partition),
            "wadoUriRoot": root,
            "qidoRoot": root,
            "wadoRoot": root,
            "qidoSupportsIncludeField": True,
            "supportsReject": False,
            "imageRendering": "wadors",
            # the node's own JPEG thumbnails (a few KB each, rendered once and cached) rather
            # than a full frame per series decoded in the browser
            "thumbnailRendering": "thumbnail",
            "thumbnailRequestStrategy": "fetch",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "staticWado": False,
            "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
            "omitQuotationForMultipartRequest": True,
            "stackRetrieveOptions": STACK_RETRIEVE,
        },
    }


def app_config(partitions: list[Partition], default: str, dicomweb: str) -> str:
    """The text of app-config.js: the shipped default's structure, this node's data sources.

    `dicomweb` is the URL of the default partition's DICOMweb root (…/dicomweb); every other
    partition is served under …/dicomweb/aets/{AE title}."""
    ordered = sorted(partitions, key=lambda p: (p.ae_title != default, p.ae_title))
    sources = [
        data_source(
            p,
            dicomweb if p.ae_title == default else f"{dicomweb}/aets/{quote(p.ae_title, safe='')}",
        )
        for p in ordered
    ]
    config: dict[str, Any] = {
        "name": "hounsfield",
        "routerBasename": None,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "experimentalStudyBrowserSort": False,
        "strictZSpacingForVolumeViewport": True,
        "groupEnabledModesFirst": True,
        "allowMultiSelectExport": False,
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "showErrorDetails": "always",
        "defaultDataSourceName": sources[0]["sourceName"] if sources else "pacs",
        "dataSources": sources,
    }
    body = json.dumps(config, indent=2, ensure_ascii=False)
    return (
        "/** @type {AppTypes.Config} */\n"
        "// Written by the Hounsfield node for this request: its partitions' DICOMweb roots.\n"
        f"window.config = {body};\n"
        f"window.config.whiteLabeling = {{\n  createLogoComponentFn: {LOGO},\n}};\n"
        f"window.config.httpErrorHandler = {ERRORS};\n"
    )
