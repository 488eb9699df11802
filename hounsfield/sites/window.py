"""Time windows for forwarding, such as nights: "22:00-06:00" in the node's local time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from hounsfield.errors import InvalidDataset

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Window:
    """A daily window from `start` to `end` (past midnight when `end` <= `start`)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Window:
        """From "HH:MM-HH:MM"."""
        match = _WINDOW.match(text)
        if match is None:
            raise InvalidDataset(f"cannot read window {text!r}; write e.g. '22:00-06:00'")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
            raise InvalidDataset(f"invalid time in window {text!r}")
        return cls(time(h1, m1), time(0, 0) if h2 == 24 else time(h2, m2))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` (aware) falls inside the window, in local time."""
        local = moment.astimezone().time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_start(self, moment: datetime) -> datetime:
        """The next time the window opens after `moment` (aware; `moment` itself when open)."""
        if self.contains(moment):
            return moment
        local = moment.astimezone()
        opening = local.replace(
            hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0
        )
        if opening <= local:
            opening += timedelta(days=1)
        return opening
