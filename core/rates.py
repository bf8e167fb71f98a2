"""Request rates as operators write them (`600/m`), parsed without Django so settings.py can use it."""

from __future__ import annotations

from dataclasses import dataclass

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    limit: int  # requests allowed per window
    period: int  # window length in seconds


def parse_rate(name: str, value: str) -> Rate | None:
    """`"600/m"` → Rate(600, 60); `"100/10s"`, `"5000/h"`, `"0"` (or `"0/m"`) → None, which disables the limit.
    Raises ValueError with a message naming `name` for anything else."""
    text = value.strip().lower()
    if text == "0":
        return None
    count, slash, per = text.partition("/")
    multiplier, unit = per[:-1], per[-1:]
    if not (slash and count.isdigit() and unit in UNITS and (multiplier == "" or multiplier.isdigit())):
        raise ValueError(
            f"{name} must look like 600/m (requests per s, m, h or d; 100/10s for a 10-second window; 0 disables), "
            f"got {value!r}"
        )
    period = UNITS[unit] * (int(multiplier) if multiplier else 1)
    if period == 0:
        raise ValueError(f"{name} has a window of 0 seconds: {value!r}")
    return None if int(count) == 0 else Rate(int(count), period)
