"""Durations and sizes as the manifests write them. Pure.

Both are bounded: Docker takes durations in nanoseconds and sizes in bytes as 64-bit integers, and a
value from the repository must never overflow on the way there (a 400-digit duration is infinity as
a float). The bounds are far above any sensible setting, so they only refuse mistakes and attacks.
"""

from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([kKmMgGtT]i?[bB]?|[bB])?$")
_SIZE_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4}

MAX_DURATION_SECONDS = 366 * 24 * 3600  # a year: 8784h
MAX_SIZE_BYTES = 2 ** 63 - 1  # Docker's int64


def parse_duration(text: str) -> float:
    """'1m30s' -> 90.0 seconds. Raises ValueError with a message that shows the expected form."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration; write it like 200ms, 5s, 1m30s or 2h")
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"'{_clip(text)}' is not a duration; write it like 200ms, 5s, 1m30s or 2h")
    if not math.isfinite(total) or total > MAX_DURATION_SECONDS:
        raise ValueError(f"'{_clip(text)}' is too long: durations are at most {MAX_DURATION_SECONDS // 3600}h")
    return total


def parse_size(value: str | int) -> int:
    """'256Mi' -> 268435456, '1G' -> 1000000000, 512 -> 512 bytes."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{value!r} is not a size; write it like 512Ki, 256Mi, 1G or 1.5Gi")
    too_large = ValueError(f"'{_clip(str(value))}' is too large: sizes are at most {MAX_SIZE_BYTES} bytes")
    if isinstance(value, int):
        if value > MAX_SIZE_BYTES:
            raise too_large
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"'{_clip(value)}' is not a size; write it like 512Ki, 256Mi, 1G or 1.5Gi")
    number = float(match.group(1))
    unit = (match.group(2) or "").rstrip("bB")
    scale = 1 if not unit else (1024 if unit.endswith("i") else 1000) ** _SIZE_POWERS[unit[0].lower()]
    # float() of a 400-digit number is inf; compare before int() so nothing overflows
    if not math.isfinite(number) or number * scale >= MAX_SIZE_BYTES:
        raise too_large
    return int(number * scale)


def _clip(text: str, size: int = 40) -> str:
    return text if len(text) <= size else text[:size - 3] + "..."
