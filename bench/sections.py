"""RESULTS.md sections that a part splices between its own markers, leaving the rest as it is."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

METHOD = "\n## Method\n"


def markers(part: str) -> tuple[str, str]:
    """The start and end markers of `part`'s section."""
    return f"<!-- part:{part} -->", f"<!-- /part:{part} -->"


def splice(text: str, part: str, lines: Sequence[str], after: Sequence[str] = ()) -> str:
    """`text` with `lines` as `part`'s section: in place of an earlier one, else after the
    last section of the parts in `after` present, else before `## Method`, else at the end."""
    start, end = markers(part)
    block = "\n".join([start, *lines, end]) + "\n"
    earlier = re.compile(re.escape(start) + r"\n.*?" + re.escape(end) + r"\n", re.S)
    if earlier.search(text):
        return earlier.sub(lambda _: block, text, count=1)
    found = [(text.find(m), m) for m in (markers(p)[1] for p in after) if m in text]
    if found:
        at, marker = max(found)
        cut = text.find("\n", at + len(marker))
        cut = len(text) if cut < 0 else cut + 1
        return text[:cut] + "\n" + block + text[cut:]
    if METHOD in text:
        return text.replace(METHOD, "\n" + block + METHOD, 1)
    return text.rstrip("\n") + "\n\n" + block if text.strip() else block


def closing(load: Sequence[float], errors: Sequence[str]) -> list[str]:
    """A part's last lines: the load average before and after it, then what failed."""
    out: list[str] = []
    if len(load) == 2:
        out += [
            f"1-minute load average {load[0]:.2f} before the part, {load[1]:.2f} "
            f"after (the machine has {os.cpu_count()} CPUs; anything else running shows here).",
            "",
        ]
    for error in errors:
        out += [f"Failed: {error.splitlines()[0]}", "", "```", error.strip(), "```", ""]
    return out
