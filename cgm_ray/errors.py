"""Errors users can see: each names what was wrong and where."""

from __future__ import annotations


class CgmRayError(Exception):
    """Base class of every error cgm-ray reports to its users."""


class ConfigError(CgmRayError, ValueError):
    """A scenario, configuration or argument is invalid; ``field`` says which part."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
