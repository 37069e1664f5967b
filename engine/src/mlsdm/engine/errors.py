"""Exceptions the server maps onto google.rpc statuses."""

from __future__ import annotations


class ValidationError(Exception):
    """A governed call's input was rejected before any state changed.

    ``field`` names the request field and ``reason`` is a stable UPPER_SNAKE code,
    so the server can build a BadRequest field violation without parsing text.
    """

    def __init__(
        self,
        field: str,
        reason: str,
        description: str,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{field}: {reason}: {description}")
        self.field = field
        self.reason = reason
        self.description = description
        # Machine-readable values behind the description, e.g. expected/actual.
        self.details = dict(details or {})


class SnapshotError(Exception):
    """A snapshot could not be restored (bad magic, version, checksum, or length)."""
