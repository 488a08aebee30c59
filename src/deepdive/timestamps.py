"""Absolute times from file names: recorders name their files by when they started recording
(SoundTrap `5783.190602123456.wav`, AudioMoth `20190602_123456.WAV`), so an event `t` seconds into
a file happened at the file's start plus `t`.

A format is a strftime pattern (`%y%m%d%H%M%S`), a pattern of letters as recorder manuals and Raven
write them (`YYMMDDhhmmss`, `YYYYMMDD_HHMMSS`: `MM` is the month before the hour and the minute after
it), or a recorder's name (`soundtrap`, `audiomoth`). The time in the name is taken as UTC, as those
recorders write it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .errors import DeepdiveError

PRESETS = {"soundtrap": "%y%m%d%H%M%S", "audiomoth": "%Y%m%d_%H%M%S"}
_DIGITS = {"%Y": 4, "%y": 2, "%m": 2, "%d": 2, "%H": 2, "%M": 2, "%S": 2, "%j": 3}
_LETTERS = [("YYYY", "%Y"), ("YY", "%y"), ("DDD", "%j"), ("DD", "%d"), ("hh", "%H"), ("HH", "%H"), ("mm", "%M"),
            ("ss", "%S"), ("SS", "%S"), ("ll", "%m")]


def strftime_pattern(fmt: str) -> str:
    """The strftime pattern of a format given in any of the accepted ways."""
    fmt = PRESETS.get(fmt.lower(), fmt)
    if "%" in fmt:
        return fmt
    out, i, hour_seen = [], 0, False
    while i < len(fmt):
        if fmt.startswith("MM", i):
            out.append("%M" if hour_seen else "%m")
            i += 2
            continue
        for letters, code in _LETTERS:
            if fmt.startswith(letters, i):
                out.append(code)
                hour_seen |= code == "%H"
                i += len(letters)
                break
        else:
            out.append(fmt[i].replace("%", "%%"))
            i += 1
    return "".join(out)


class FileTimes:
    """Finds the start time of a recording in its file name."""

    def __init__(self, fmt: str) -> None:
        self.given = fmt
        self.pattern = strftime_pattern(fmt)
        parts, i, codes = [], 0, []
        while i < len(self.pattern):
            if self.pattern[i] == "%" and i + 1 < len(self.pattern):
                code = self.pattern[i : i + 2]
                if code == "%%":
                    parts.append("%")
                elif code in _DIGITS:
                    parts.append(rf"(\d{{{_DIGITS[code]}}})")
                    codes.append(code)
                else:
                    raise DeepdiveError(f"--timestamp-format {fmt}: {code} is not understood; use %Y %y %m %d %j %H "
                                        "%M %S, letters such as YYMMDDhhmmss, or soundtrap / audiomoth")
                i += 2
            else:
                parts.append(re.escape(self.pattern[i]))
                i += 1
        if not {"%H", "%M"} <= set(codes) or not ({"%m", "%d"} <= set(codes) or "%j" in codes) \
                or not {"%Y", "%y"} & set(codes):
            raise DeepdiveError(f"--timestamp-format {fmt}: needs the year, the day (month and day, or day of "
                                "year), the hour and the minute, e.g. %y%m%d%H%M%S or YYMMDDhhmmss")
        # digits not glued to other digits: 20190602_123456 inside a longer run of digits is not a time
        self.regex = re.compile(r"(?<!\d)" + "".join(parts) + r"(?!\d)")

    def start(self, path: str | Path) -> datetime | None:
        """When the recording started (UTC), or None when its name holds no valid time of this format."""
        for m in self.regex.finditer(Path(path).name):
            try:
                return datetime.strptime(m.group(0), self.pattern).replace(tzinfo=UTC)
            except ValueError:  # digits in the right places that are no date (month 13)
                continue
        return None


def iso(t: datetime, offset_s: float = 0.0) -> str:
    """`t` plus `offset_s` as ISO 8601 UTC to the millisecond: 2019-06-02T12:34:56.789Z."""
    return (t + timedelta(seconds=offset_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
