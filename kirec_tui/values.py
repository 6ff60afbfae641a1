"""How the front ends show a recorded value: counts as integers, rates to 4 decimals, seconds as a duration.
Free of textual and rich, so the CLI's tables and the workbench's show the same text."""

from __future__ import annotations

import math


def is_count(key: str, value: float) -> bool:
    """Whole numbers that are not rates (HR@10 of 1.0 stays 1.0000) nor losses: users, epochs, items."""
    return value.is_integer() and "@" not in key and "loss" not in key


def value_text(key: str, value: object) -> str:
    """A value as the tables show it: counts as integers, rates to 4 decimals, seconds as a duration."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else str(value)
    if key.endswith("seconds"):
        return duration_text(float(value))
    if isinstance(value, int) or is_count(key, value):
        return f"{int(value):d}"
    return f"{value:.4f}"


def duration_text(seconds: float) -> str:
    """A duration as the workbench writes it everywhere: 350 ms, 4.2 s, 4m 30s, 2h 01m."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
