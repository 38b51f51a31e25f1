"""Client-supplied text (file names, column names) quoted safely inside error messages."""

from __future__ import annotations

_MAX_CHARS = 80


def quoted(text: str | None) -> str:
    """'text' with control characters masked and its length bounded, so a message stays one readable line."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in text or "")
    if len(shown) > _MAX_CHARS:
        shown = shown[: _MAX_CHARS - 3] + "..."
    return f"'{shown}'"


def listing(names: list[str], most: int = 10) -> str:
    """'a', 'b' and 'c' (or "nothing"), at most `most` names and a count of the rest."""
    if not names:
        return "nothing"
    shown = [quoted(name) for name in names[:most]]
    if len(names) > most:
        shown.append(f"{len(names) - most} more")
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def byte_count(n: int) -> str:
    """12,345,678 bytes (11.8 MiB): exact for whoever compares it with a limit, readable for everyone else."""
    exact = f"{n:,} bytes"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{exact} ({n / (1 << shift):.1f} {unit})"
    return exact
