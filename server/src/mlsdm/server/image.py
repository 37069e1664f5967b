"""What `mlsdm-grpc serve --image-defaults` (the container image's CMD) adds.

Inside a container, loopback is unreachable from `docker run -p`, so the image
listens on every interface (server.host 0.0.0.0, both the gRPC and the HTTP
port) by default. It is never open without credentials: when no credential
source is configured (auth.*), one admin API key is generated at the first
start, kept hashed in the data volume (tenants.data_dir/admin-api-keys) and
printed once; later starts reuse that file and print nothing. These are
defaults only: a config file, MLSDM_* variables and --set still win, so a
Kubernetes ConfigMap configures the pod as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlsdm.server.service.security.keys import KeyEntry, hash_key, new_key
from mlsdm.server.service.security.roles import ADMIN
from mlsdm.server.settings import Settings, load_settings

BOOTSTRAP_KEYS = "admin-api-keys"
ALL_INTERFACES = "0.0.0.0"


def ensure_admin_key(data_dir: Path) -> tuple[Path, str | None]:
    """The bootstrap keys file, created with a fresh admin key when missing:
    (its path, the new key; None when the file already existed)."""
    path = data_dir / BOOTSTRAP_KEYS
    if path.exists():
        return path, None
    data_dir.mkdir(parents=True, exist_ok=True)
    key_id, key = new_key()
    entry = KeyEntry(key_id, hash_key(key), "admin", frozenset({ADMIN}), None)
    # Created exclusively and private: two first starts never both win.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(entry.to_json() + "\n")
    return path, key


def load_image_settings(config_file: Path | None, overrides: Mapping[str, Any]) -> Settings:
    """The settings with the image's defaults under every other source."""
    defaults: dict[str, Any] = {"server": {"host": ALL_INTERFACES}}
    # Without the host default first: does anything configure credentials?
    plain = load_settings(config_file, overrides=overrides)
    if not plain.auth.has_credentials:
        path, key = ensure_admin_key(plain.tenants.data_dir)
        if key is not None:
            print(
                f"mlsdm-grpc: no credential source configured; generated an admin API key "
                f"(shown once, kept hashed in {path.absolute()}):\n{key}",
                flush=True,
            )
        defaults["auth"] = {"api_keys_file": str(path)}
    return load_settings(config_file, overrides=overrides, defaults=defaults)
