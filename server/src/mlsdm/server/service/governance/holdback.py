"""StreamGenerate's holdback: text reaches the client a sentence at a time, and
only after the sentence (and the answer so far) has been scored.

A sentence ends at ., ! or ? followed by whitespace, or at a line break; the
boundary's whitespace stays with the sentence so the pieces sent concatenate
to exactly the answer. A sentence that never ends is capped at MAX_PENDING
characters, so a long unpunctuated answer is still released (scored) in pieces.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*\s+|\n+")
MAX_PENDING = 400


class Holdback:
    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the pieces now complete, in order."""
        self._pending += delta
        pieces: list[str] = []
        while True:
            match = _BOUNDARY.search(self._pending)
            if match is None:
                break
            pieces.append(self._pending[: match.end()])
            self._pending = self._pending[match.end() :]
        while len(self._pending) > MAX_PENDING:
            pieces.append(self._pending[:MAX_PENDING])
            self._pending = self._pending[MAX_PENDING:]
        return pieces

    def flush(self) -> str:
        """The unfinished tail (score it before sending it)."""
        tail, self._pending = self._pending, ""
        return tail
