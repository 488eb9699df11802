"""Hypothesis settings and input strategies shared by the fuzz tests.

`make test` runs each property with FUZZ_EXAMPLES examples, derandomized, so it cannot flake;
`make reliability` sets HOUNSFIELD_FUZZ_EXAMPLES to run many more, from a random seed."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bench.reliability.mutate import Source, corpus

SHORT_EXAMPLES = 120
EXAMPLES = int(os.environ.get("HOUNSFIELD_FUZZ_EXAMPLES") or 0) or SHORT_EXAMPLES
LONG = EXAMPLES != SHORT_EXAMPLES
# An example that takes longer than this is a hang (a quadratic walk, a loop that never ends).
DEADLINE = timedelta(seconds=5)

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not LONG,
    deadline=DEADLINE,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # the archive is shared by the examples on purpose
    ],
)
# Properties that go through the HTTP application run a tenth as many examples.
FUZZ_HTTP = settings(FUZZ, max_examples=max(20, EXAMPLES // 10))

SOURCES: tuple[Source, ...] = corpus()
HEADER_BYTES = 4096  # mutations land here: parsers stop at Pixel Data
UNDEFINED = b"\xff\xff\xff\xff"


@st.composite
def mutated(draw: Any, data: bytes) -> bytes:
    """`data` with one to four byte-level edits: flips, inserts, deletions, a truncation,
    a 2- or 4-byte field overwritten with a broken length."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        size = len(out)
        if not size:
            break
        at = draw(st.integers(0, min(size, HEADER_BYTES) - 1))
        kind = draw(st.sampled_from(("flip", "insert", "delete", "truncate", "length")))
        if kind == "flip":
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del out[at : at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del out[at:]
        else:
            value = draw(
                st.sampled_from(
                    (UNDEFINED, b"\xfe\xff\xff\x7f", b"\x01\x00\x00\x00", b"\xff\xff", b"\x03\x00")
                )
            )
            out[at : at + len(value)] = value
    return bytes(out)


@st.composite
def datasets(draw: Any) -> tuple[Source, bytes]:
    """A corpus source and its dataset bytes, mutated or (sometimes) arbitrary bytes."""
    source = draw(st.sampled_from(SOURCES))
    if draw(st.integers(0, 9)) == 0:
        return source, draw(st.binary(max_size=512))
    return source, draw(mutated(source.dataset))


@st.composite
def part10_bodies(draw: Any) -> bytes:
    """A corpus file (File Meta and dataset) with edits, mostly in its File Meta."""
    source = draw(st.sampled_from(SOURCES))
    whole = source.meta + source.dataset[:HEADER_BYTES]
    if draw(st.booleans()):
        return source.meta[:132] + draw(mutated(source.meta[132:])) + source.dataset
    return draw(mutated(whole))
