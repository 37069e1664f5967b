from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from fake_anthropic import FakeAnthropic
from fake_openai import FakeOpenAI
from llm_calls import Upstream
from mlsdm_testkit import ServerThread
from mlsdm_testkit import test_settings as make_settings

from mlsdm.server.service.llm import build_backend
from mlsdm.v1 import cognitive_service_pb2_grpc


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(model="claude-fake") as server:
        yield server


@pytest.fixture(params=["openai", "anthropic"])
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    kind = str(request.param)
    with (FakeOpenAI() if kind == "openai" else FakeAnthropic()) as server:
        yield Upstream(kind, server, key=f"k-{kind}-test")


@pytest.fixture
def served(upstream: Upstream) -> Iterator[cognitive_service_pb2_grpc.CognitiveServiceStub]:
    """The real gRPC server with the upstream's backend, retries and breaker."""
    settings = make_settings({
        "llm": upstream.llm_settings(
            retry={"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.01},
            breaker={"failure_threshold": 2, "cool_down_s": 60},
        )
    })
    with (
        ServerThread(settings, build_backend(settings.llm)) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        yield cognitive_service_pb2_grpc.CognitiveServiceStub(channel)
