"""Memory sizes as people write them: ``"4GiB"``, ``"512MB"``, or a number of bytes."""

from __future__ import annotations

import re

from .errors import ConfigError

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}


def parse_size(text: str | int) -> int:
    """Bytes from ``"4GiB"``, ``"512MB"``, ``"1.5G"`` or a plain number of bytes.

    Examples
    --------
    >>> parse_size("4GiB"), parse_size("1.5k"), parse_size(100)
    (4294967296, 1500, 100)
    """
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", text)
        if not match or match.group(2).lower() not in _UNITS:
            raise ConfigError(
                f"memory limit {text!r}: expected a size such as 4GiB, 512MiB, 2GB or a number of bytes"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise ConfigError(f"memory limit {text!r}: must be positive")
    return size


def format_size(n: float) -> str:
    """``1536 -> '1.5 KiB'``: binary units, three significant digits."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
