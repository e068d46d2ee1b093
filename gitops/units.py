"""Durations and sizes as the manifests write them. Pure."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([kKmMgGtT]i?[bB]?|[bB])?$")
_SIZE_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4}


def parse_duration(text: str) -> float:
    """'1m30s' -> 90.0 seconds. Raises ValueError with a message that shows the expected form."""
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"'{text}' is not a duration; write it like 200ms, 5s, 1m30s or 2h")
    return total


def parse_size(value: str | int) -> int:
    """'256Mi' -> 268435456, '1G' -> 1000000000, 512 -> 512 bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"'{value}' is not a size; write it like 512Ki, 256Mi, 1G or 1.5Gi")
    number = float(match.group(1))
    unit = (match.group(2) or "").rstrip("bB")
    if not unit:
        return int(number)
    base = 1024 if unit.endswith("i") else 1000
    return int(number * base ** _SIZE_POWERS[unit[0].lower()])
