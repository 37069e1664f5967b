"""The one way a response or event stream is closed early."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


async def close_stream(stream: AsyncIterator[Any]) -> None:
    """Closes a stream now, so its `finally` blocks (and any upstream connection
    under them) run when the consumer stops, not at garbage collection.

    Streams are typed as AsyncIterator, which has no aclose(); async generators have.
    """
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
