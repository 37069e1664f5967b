"""Server TLS credentials from the settings (None: plaintext listener)."""

from __future__ import annotations

import grpc

from mlsdm.server.service.security.settings import TLSSettings


def server_credentials(tls: TLSSettings) -> grpc.ServerCredentials | None:
    if tls.cert_file is None or tls.key_file is None:
        return None
    key = tls.key_file.read_bytes()
    chain = tls.cert_file.read_bytes()
    client_ca = tls.client_ca_file.read_bytes() if tls.client_ca_file is not None else None
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None and tls.require_client_cert,
    )
