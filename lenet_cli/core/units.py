"""Numbers as people read them: one spelling of sizes, durations and counts for every command.

Tables show these; JSON always keeps the raw number beside them (bytes, seconds).
"""

from __future__ import annotations


def plural(count: int, word: str, plural_word: str | None = None) -> str:
    """``1 epoch``, ``3 epochs``: a count with its noun agreeing (never ``1 epochs`` or ``epoch(s)``)."""
    return f"{count:,} {word if count == 1 else plural_word or word + 's'}"


def human_size(size: int | float | None) -> str:
    """Bytes in SI units, as ``ls -h --si`` and browsers show them: ``812 B``, ``95.3 kB``, ``12.2 MB``."""
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def human_duration(seconds: float | None) -> str:
    """``42 s``, ``2.6 min``, ``1.4 h``: seconds at the scale a person thinks in."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def label_text(label: str, index: int) -> str:
    """A class as a person reads it: ``7`` for a digit, ``Sneaker (7)`` where name and index differ."""
    return label if label == str(index) else f"{label} ({index})"
