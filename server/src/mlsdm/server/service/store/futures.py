"""Failing a commit future whose caller may have stopped waiting."""

from __future__ import annotations

import asyncio
from typing import Any


def fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        # The caller may have stopped waiting (cancelled call): the error is
        # reported through the store's log and metrics, not "never retrieved".
        future.add_done_callback(consume)


def consume(future: asyncio.Future[Any]) -> None:
    """A done-callback that marks a future's exception as retrieved."""
    if not future.cancelled():
        future.exception()
