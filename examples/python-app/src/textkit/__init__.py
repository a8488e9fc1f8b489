"""Small text helpers: slugs, durations and version numbers."""

from textkit.duration import format_duration, parse_duration
from textkit.slug import slugify
from textkit.version import Version

__all__ = ["Version", "format_duration", "parse_duration", "slugify"]
__version__ = "0.3.0"
