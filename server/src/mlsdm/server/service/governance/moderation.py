"""A ContentScorer backed by an OpenAI-compatible moderation endpoint.

`POST {base_url}/v1/moderations` with `{"model", "input": [texts]}`; each
result's `category_scores` (probabilities in [0, 1]) map to a moral value of
1 - max(category score): one category the endpoint is sure of is enough to
refuse. When the endpoint fails (connection, timeout, non-2xx, malformed
answer) the scorer either raises ModerationUnavailable, which the caller sees
as UNAVAILABLE with reason BACKEND_UNAVAILABLE (fail closed, the default), or
scores with the fallback scorer it was given (`on_failure: local`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx

from mlsdm.server.service.governance.settings import ModerationSettings
from mlsdm.server.service.llm.base import BackendUnavailableError

PATH = "/v1/moderations"
RETRY_AFTER_S = 1.0


class _Scorer(Protocol):
    async def score(self, texts: Sequence[str]) -> list[float]: ...


class ModerationUnavailable(BackendUnavailableError):
    """The moderation endpoint did not give a usable answer."""


def moral_value(result: dict[str, Any]) -> float:
    """1 - the highest category score of one moderation result."""
    scores = result.get("category_scores")
    if not isinstance(scores, dict) or not scores:
        raise ValueError("result without category_scores")
    values = [float(v) for v in scores.values()]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("non-finite category score")
    return min(1.0, max(0.0, 1.0 - max(values)))


class ModerationScorer:
    name = "moderation"

    def __init__(
        self,
        settings: ModerationSettings,
        fallback: _Scorer | None = None,
        on_fallback: Callable[[], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        key = settings.resolve_api_key()
        headers = {"authorization": f"Bearer {key.get_secret_value()}"} if key else {}
        self._settings = settings
        self._fallback = fallback if settings.on_failure == "local" else None
        self._on_fallback = on_fallback
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            headers={"accept": "application/json", **headers},
            timeout=httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s),
            transport=transport,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def score(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        try:
            return await self._ask(texts)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            if self._fallback is None:
                raise ModerationUnavailable(
                    f"moderation endpoint failed: {type(exc).__name__}", RETRY_AFTER_S
                ) from None
            if self._on_fallback is not None:
                self._on_fallback()
            return await self._fallback.score(texts)

    async def _ask(self, texts: Sequence[str]) -> list[float]:
        reply = await self._client.post(
            PATH, json={"model": self._settings.model, "input": list(texts)}
        )
        reply.raise_for_status()
        results = reply.json()["results"]
        if not isinstance(results, list) or len(results) != len(texts):
            raise ValueError("moderation answer has the wrong number of results")
        return [moral_value(r) for r in results]
