"""Redacts personal data and credentials from text bound for the logs.

Patterns are tuned against the values our own log lines carry (hex request and
trace ids, ISO timestamps, IP addresses, durations), which must survive intact:
a phone number needs a leading `+` or digit groups with separators, never a
bare run of digits inside an identifier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
REDACTED = "[REDACTED]"

# Credentials first: a header dump like "authorization: Bearer ey..." must
# lose the token before the generic key=value rule looks at it.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Prefixed keys in the shapes issuers commonly use (sk-..., mlsdm_..., ghp_...).
_PREFIXED_KEY = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}|\b(?:mlsdm|ghp|gho|xox[abp])_[A-Za-z0-9_-]{16,}"
)
_KEY_VALUE = re.compile(
    r"(?i)\b((?:x-)?api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|token|secret"
    r"|client[_-]?secret|password|passwd|authorization)"
    r"(\"?'?\s*[:=]\s*\"?'?)"
    r"(?!\[REDACTED\]|Bearer\s)"
    r"([^\s\"',;&]+)"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d\.)"
    r"(?:"
    # E.164 and international forms: +44 20 7946 0958, +1-555-123-4567, +4915112345678
    r"\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}"
    r"|"
    # national forms with separators: (555) 123-4567, 555-123-4567, 555.123.4567, 020 7946 0958
    r"(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}"
    r")"
    r"(?!\w|\.\d)"
)


# Something every pattern above needs: a `:`/`=` (key=value), `@` (e-mail),
# `+digit` or digit-separator-digit (phone), or one of the literal prefixes.
# Most values in a log line (method names, hex ids, enum words) have none, and
# one search here is much cheaper than the six substitutions (issue 10: the
# access log was the largest Python cost per RPC). Keep it a superset of the
# patterns when they change: tests/observability/test_scrub_precheck.py checks.
_MAYBE = re.compile(r"[@:=]|\+\d|\d[\s.-]\d|(?i:bearer|eyj|[spr]k-|mlsdm_|gh[po]_|xox)")


def scrub(text: str) -> str:
    """The text with secrets and personal data replaced by placeholders."""
    if not text or _MAYBE.search(text) is None:
        return text
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _PREFIXED_KEY.sub(REDACTED, text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _EMAIL.sub(EMAIL, text)
    return _PHONE.sub(PHONE, text)


def scrub_value(value: Any) -> Any:
    """Scrubs every string inside plain data (dicts, lists); numbers pass as they are."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value
