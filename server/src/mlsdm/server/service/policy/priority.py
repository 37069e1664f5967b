"""Admission priority of a call (the x-mlsdm-priority header)."""

from __future__ import annotations

import enum


class Priority(enum.IntEnum):
    """Admission priority; a larger value is served first."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3
