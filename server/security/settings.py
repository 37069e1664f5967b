"""Settings of authentication and TLS."""

from __future__ import annotations

from pathlib import Path

from .._model import SettingsModel


class AuthSettings(SettingsModel):
    """Credential sources. With none configured, only loopback serving is allowed."""

    # File of hashed API keys (see README "Authentication"); reloaded on change.
    api_keys_file: Path | None = None

    @property
    def has_credentials(self) -> bool:
        return self.api_keys_file is not None
