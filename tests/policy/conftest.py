"""Fixtures of the policy tests: credentials generated per run."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_kit import Issuer, KeysFile


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> KeysFile:
    return KeysFile(tmp_path_factory.mktemp("keys") / "api-keys")


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Issuer:
    return Issuer(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture
def tmp_keys(tmp_path: Path) -> KeysFile:
    return KeysFile(tmp_path / "api-keys")
