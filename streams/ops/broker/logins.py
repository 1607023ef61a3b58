"""Who the embedded node's own tooling authenticates as: the broker's super user, the operator.

The broker's secret is made once, on the first secured `broker up`, and kept like every
identity's in the secrets folder (`hotelhub-broker.secret`, `username:secret`, mode 0600).
It authenticates the node to itself and lets the hub apply identities and ACLs to the
embedded node; people, CI and Kafka's CLI tools act as the operator identity instead.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from streams.core.identities import AuthenticationError, read_user_info, secret_path, write_private
from streams.ops.broker.config import BROKER_USER
from streams.ops.broker.probe import ProbeLogin
from streams.settings import HubSettings


def broker_secret_path(settings: HubSettings) -> Path:
    return secret_path(settings.secrets_dir, BROKER_USER)


def ensure_broker_secret(settings: HubSettings) -> str:
    """The broker's secret, made on first use: the node's storage is formatted with it."""
    path = broker_secret_path(settings)
    if path.exists():
        return read_user_info(path)[1]
    secret = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, f"{BROKER_USER}:{secret}\n")
    return secret


def broker_login(settings: HubSettings) -> ProbeLogin | None:
    """The broker's own credential, once it has one; None when security is off."""
    path = broker_secret_path(settings)
    if not settings.secured or not path.exists():
        return None
    username, secret = read_user_info(path)
    return ProbeLogin(username, secret, settings.kafka_ssl_cafile)


def acting_credentials(settings: HubSettings) -> tuple[str, str] | None:
    """Whom an operator command acts as: the operator, unless told otherwise.

    HOTELHUB_USERNAME/PASSWORD, HOTELHUB_CREDENTIALS_FILE or an explicit HOTELHUB_IDENTITY
    pick another identity; None when security is off.
    """
    return settings.acting_as("operator").credentials()


def admin_credentials(settings: HubSettings) -> tuple[str, str]:
    """Who applies identities and ACLs: the broker itself when it is ours, else the operator."""
    if settings.uses_embedded_broker:
        login = broker_login(settings)
        if login is not None:
            return login.username, login.secret
    found = acting_credentials(settings)
    if found is None:
        raise AuthenticationError("security is off (HOTELHUB_SECURITY=none): nothing to apply")
    return found
