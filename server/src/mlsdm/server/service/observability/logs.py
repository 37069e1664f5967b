"""Log setup: one JSON object per line on stderr, scrubbed of PII and secrets.

Every line carries the trace and span id of the span active when it was
written, so a log search can jump to the trace and back.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from mlsdm.server.service.observability.sampled_logs import SampledLogFilter
from mlsdm.server.service.observability.scrub import scrub, scrub_value
from mlsdm.server.service.observability.settings import LoggingSettings

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}

ACCESS_LOGGER = "mlsdm.access"


def _trace_ids() -> tuple[str, str] | None:
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, msg, extras, trace ids."""

    def __init__(self, scrub_pii: bool = True) -> None:
        super().__init__()
        self._scrub = scrub_pii

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if "trace_id" not in out:
            ids = _trace_ids()
            if ids is not None:
                out["trace_id"], out["span_id"] = ids
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        if self._scrub:
            out = scrub_value(out)
        return json.dumps(out, default=str, ensure_ascii=False)


class ScrubbingTextFormatter(logging.Formatter):
    """The human-readable format, with the same scrubbing as the JSON one."""

    def __init__(self, scrub_pii: bool = True) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._scrub = scrub_pii

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return scrub(line) if self._scrub else line


def configure_logging(settings: LoggingSettings, stream: TextIO | None = None) -> logging.Handler:
    """Replaces the root handlers with one stderr handler in the configured format."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter(settings.scrub_pii)
        if settings.json_format
        else ScrubbingTextFormatter(settings.scrub_pii)
    )
    handler.setFormatter(formatter)
    handler.addFilter(SampledLogFilter(settings.sample_interval_s))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    # The access log is INFO; it follows its own switch, not the root level.
    logging.getLogger(ACCESS_LOGGER).setLevel(
        logging.INFO if settings.access_log else logging.WARNING
    )
    return handler
