"""Human durations such as ``1h 30m`` or ``2 days``, in the style of CI ``timeout:`` values."""

import re

_UNITS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}
_PART = re.compile(r"(\d+)\s*([a-z]+)")
_DURATION = re.compile(r"^\d+\s*[a-z]+(?:\s*\d+\s*[a-z]+)*$")


def parse_duration(text):
    """Return the number of seconds in ``text``.

    ``text`` is a sequence of ``<number><unit>`` parts (``1h30m``, ``1 hour 30 minutes``); a bare
    number is seconds. Raises ``ValueError`` for anything else.
    """
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    if not _DURATION.match(text):
        raise ValueError(f"invalid duration: {text!r}")
    return sum(int(count) * _unit_seconds(unit, text) for count, unit in _PART.findall(text))


def _unit_seconds(unit, text):
    try:
        return _UNITS[unit]
    except KeyError:
        raise ValueError(f"invalid duration: {text!r} (unknown unit {unit!r})") from None


def format_duration(seconds):
    """Format ``seconds`` the way ``parse_duration`` reads it back: ``5400`` gives ``1h 30m``."""
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"
