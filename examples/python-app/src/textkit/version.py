"""Semantic version numbers (``MAJOR.MINOR.PATCH[-PRERELEASE]``), compared the semver way."""

import functools
import re

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


def _prerelease_key(prerelease):
    """Sort key of a pre-release: numeric identifiers before alphanumeric ones, none last."""
    if prerelease is None:
        return (1, ())
    key = tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                for part in prerelease.split("."))
    return (0, key)


@functools.total_ordering
class Version:
    """A parsed version; ``1.0.0-rc.1 < 1.0.0 < 1.0.1 < 1.10.0``."""

    def __init__(self, major, minor, patch, prerelease=None):
        self.major, self.minor, self.patch = major, minor, patch
        self.prerelease = prerelease

    @classmethod
    def parse(cls, text):
        """Parse ``1.2.3``, ``v1.2.3`` or ``1.2.3-beta.2``; raise ``ValueError`` otherwise."""
        match = _VERSION.match(text.strip())
        if not match:
            raise ValueError(f"not a version: {text!r}")
        major, minor, patch, prerelease = match.groups()
        return cls(int(major), int(minor), int(patch), prerelease)

    def bump(self, part):
        """Return the next ``major``, ``minor`` or ``patch`` version (dropping any pre-release)."""
        if part == "major":
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            return Version(self.major, self.minor + 1, 0)
        if part == "patch":
            return Version(self.major, self.minor, self.patch + 1)
        raise ValueError(f"unknown version part: {part!r}")

    def _key(self):
        return (self.major, self.minor, self.patch, _prerelease_key(self.prerelease))

    def __eq__(self, other):
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other):
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{self.prerelease}" if self.prerelease else core

    def __repr__(self):
        return f"Version({str(self)!r})"
