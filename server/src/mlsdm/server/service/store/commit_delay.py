"""How long the SQLite writer waits for more appends before it commits.

A commit costs about the same for one event as for a dozen (a transaction and
an fsync), but grpc hands a busy server its calls one at a time, so a writer
that commits the moment it wakes commits one event per call. Waiting lets
concurrent calls share the commit, in the spirit of PostgreSQL's
commit_delay, but a fixed wait hurts a lone caller (it waits for nobody) and
a pair (both wait the whole delay for the other). So the writer waits only
for as many appends as recent commits carried, never longer than a ceiling:

* `expected` is the batch size recent commits reached. A batch smaller than
  that waits (at most the ceiling) until it is that large.
* A wait that times out learns the smaller size; one that fills keeps it.
* A batch already as large as expected commits at once, except every
  PROBE_EVERY-th one, which waits one short step for one more append and
  learns the larger size when it comes: how the writer finds concurrency.

A lone caller therefore pays one short step every PROBE_EVERY commits, a pair
waits only for its partner, and a crowd shares commits up to the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

# The ceiling unless configured (tenants.commit_delay_max_s).
DEFAULT_CEILING_S = 0.002
# The probe's wait for one more append than expected.
PROBE_S = 0.000_2
PROBE_EVERY = 16


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait until the batch holds `size` items, or `limit_s` has passed."""

    size: int
    limit_s: float


@dataclass
class CommitDelay:
    """The wait before each commit; a `ceiling_s` of 0 never waits."""

    ceiling_s: float = DEFAULT_CEILING_S
    expected: int = 1
    _since_probe: int = 0

    def plan(self, queued: int) -> Wait | None:
        """What to wait for, holding `queued` items; None: commit now."""
        if self.ceiling_s <= 0.0:
            return None
        if queued < self.expected:
            return Wait(self.expected, self.ceiling_s)
        self._since_probe += 1
        if self._since_probe < PROBE_EVERY:
            return None
        self._since_probe = 0
        return Wait(queued + 1, min(PROBE_S, self.ceiling_s))

    def observe(self, wait: Wait, size: int) -> None:
        """The batch holds `size` items after `wait` ended."""
        if size >= wait.size:
            self.expected = max(self.expected, size)
        else:
            self.expected = max(1, size)
