"""Frame ranges (inclusive, as artists write them: ``1001-1100``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from faceplate.errors import ConfigError


@dataclass(frozen=True)
class FrameRange:
    """Inclusive frame range ``first..last`` in plate frame numbers."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ConfigError(f"frame range {self.first}-{self.last} is empty: last is before first")

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, int) and self.first <= frame <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def clip(self, other: FrameRange) -> FrameRange:
        """Intersection with ``other`` (e.g. the plate's own range); error when they do not overlap."""
        first, last = max(self.first, other.first), min(self.last, other.last)
        if last < first:
            raise ConfigError(f"frames {self} are outside the plate's frames {other}")
        return FrameRange(first, last)

    def chunks(self, size: int) -> list[FrameRange]:
        """Split into consecutive ranges of at most ``size`` frames (for render farms)."""
        return [FrameRange(a, min(a + size - 1, self.last)) for a in range(self.first, self.last + 1, size)]


_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+))?\s*$")


def parse_frame_range(text: str) -> FrameRange:
    """Parse ``"1001-1100"`` or ``"1001"``; raise ConfigError with the expected form otherwise."""
    m = _RANGE.match(text)
    if not m:
        raise ConfigError(f"bad frame range {text!r}: write FIRST-LAST, e.g. 1001-1100, or one frame number")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else first
    return FrameRange(first, last)


# ------------------------------------------------------------------------------ sequence patterns

_HASHES = re.compile(r"(#+|@+|%0?(\d*)d)")


def is_pattern(name: str) -> bool:
    """True for sequence patterns such as ``plate.####.exr`` or ``plate.%04d.exr``."""
    return _HASHES.search(name) is not None


def _pad(m: re.Match[str]) -> int:
    tok = m.group(1)
    return len(tok) if tok[0] in "#@" else int(m.group(2) or 1)


def pattern_regex(pattern: str) -> tuple[Path, re.Pattern[str]]:
    """Folder and filename regex (group 1 = frame number) of ``plate.####.exr`` / ``plate.%04d.exr``."""
    p = Path(pattern)
    m = _HASHES.search(p.name)
    if not m:
        raise ConfigError(f"{pattern} is not a sequence pattern (write plate.####.exr or plate.%04d.exr)")
    width = _pad(m)
    head, tail = re.escape(p.name[: m.start()]), re.escape(p.name[m.end() :])
    digits = rf"(-?\d{{{width},}})" if width > 1 else r"(-?\d+)"
    return p.parent, re.compile(f"^{head}{digits}{tail}$")


def sequence_files(pattern: str) -> dict[int, str]:
    """{frame number: file} of the sequence ``pattern`` on disk ({} when its folder is missing or unreadable);
    ConfigError when ``pattern`` is not a sequence pattern."""
    folder, rx = pattern_regex(pattern)
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    return {int(m.group(1)): str(folder / n) for n in names if (m := rx.match(n))}


def pattern_path(pattern: str, frame: int) -> Path:
    """File of ``frame`` in ``pattern``: ``pattern_path("a.####.exr", 7) == Path("a.0007.exr")``."""
    p = Path(pattern)
    if not is_pattern(p.name):
        raise ConfigError(f"{pattern} is not a sequence pattern (write plate.####.exr or plate.%04d.exr)")
    return p.with_name(_HASHES.sub(lambda m: f"{frame:0{_pad(m)}d}", p.name, count=1))


def timecode(frame: int, fps: Fraction | float) -> str:
    """Non-drop-frame SMPTE timecode ``HH:MM:SS:FF`` of frame number ``frame`` at ``fps`` (rounded to whole fps)."""
    base = max(1, round(float(fps)))
    sign, f = ("-", -frame) if frame < 0 else ("", frame)
    s, ff = divmod(f, base)
    return f"{sign}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{ff:02d}"
