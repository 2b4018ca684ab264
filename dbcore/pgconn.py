"""Building PostgreSQL connections the way every bootstrap step must: TLS always, verified when a
CA bundle is given, bounded connect time, and a password that never reaches a log line.

RDS enforces TLS server-side (`rds.force_ssl=1`); the client side here refuses to even ask for
`disable`/`allow`/`prefer`, so a misconfigured caller fails before it sends a password in clear.

TLS alone does not keep the password: a server (any holder of a certificate that `require` accepts,
or a host answering on the RDS name's private address on the operator's own network) may ask for
*cleartext* authentication, and libpq answers with the password. So every connection also sets
`require_auth=scram-sha-256` (libpq >= 16): the client refuses any other method before sending
anything, and SCRAM never reveals the password to the server. `channel_binding=prefer` binds the
SCRAM exchange to the TLS certificate whenever the server offers SCRAM-SHA-256-PLUS (RDS and
PostgreSQL >= 11 over TLS do); `Endpoint.channel_binding="require"` refuses a server that does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from components.pgmodel import PINNED_SEARCH_PATH_OPTIONS

SECURE_SSLMODES = ("require", "verify-ca", "verify-full")
REQUIRED_AUTH = "scram-sha-256"  # the only method we answer: RDS stores SCRAM verifiers (password_encryption)
CHANNEL_BINDINGS = ("prefer", "require")
PINNED = ("require_auth", "channel_binding", "sslmode", "password")  # never overridden through **extra
DEFAULT_CONNECT_TIMEOUT = 10
APPLICATION_NAME = "pghome-bootstrap"


class ConnectionSettingsError(ValueError):
    """A connection was asked for with settings we refuse (no TLS, missing CA file, ...)."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    dbname: str = "postgres"
    sslmode: str = "verify-full"
    sslrootcert: str | None = None  # the RDS CA bundle (or a test CA); required for verify-*
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    hostaddr: str | None = None  # dial this address but verify `host` (a tunnel: bootstrap/access/tunnel.py)
    channel_binding: str = "prefer"  # "require": refuse a server that does not offer SCRAM-SHA-256-PLUS


def build_conninfo(endpoint: Endpoint, user: str, password: str, **extra: Any) -> str:
    """A libpq conninfo string for `user` at `endpoint`. Raises ConnectionSettingsError for a
    plaintext-capable sslmode, a verify-* mode without an existing CA file, or a bad timeout."""
    if endpoint.sslmode not in SECURE_SSLMODES:
        raise ConnectionSettingsError(f"sslmode {endpoint.sslmode!r} is not allowed: use one of {', '.join(SECURE_SSLMODES)}")
    if endpoint.sslmode.startswith("verify-"):
        if not endpoint.sslrootcert:
            raise ConnectionSettingsError(f"sslmode {endpoint.sslmode} needs sslrootcert (the RDS CA bundle file)")
        if not Path(endpoint.sslrootcert).is_file():
            raise ConnectionSettingsError(f"sslrootcert {endpoint.sslrootcert} does not exist")
    if endpoint.channel_binding not in CHANNEL_BINDINGS:
        raise ConnectionSettingsError(f"channel_binding {endpoint.channel_binding!r} is not allowed: use one of {', '.join(CHANNEL_BINDINGS)}")
    pinned = sorted(set(extra) & set(PINNED))
    if pinned:
        raise ConnectionSettingsError(f"{', '.join(pinned)} cannot be overridden: every connection requires TLS and SCRAM authentication")
    if not 1 <= endpoint.connect_timeout <= 300:
        raise ConnectionSettingsError(f"connect_timeout {endpoint.connect_timeout} must be 1-300 seconds")
    if not 1 <= endpoint.port <= 65535:
        raise ConnectionSettingsError(f"port {endpoint.port} must be 1-65535")
    params: dict[str, Any] = {
        "host": endpoint.host,
        "port": str(endpoint.port),
        "dbname": endpoint.dbname,
        "user": user,
        "password": password,
        "sslmode": endpoint.sslmode,
        "require_auth": REQUIRED_AUTH,
        "channel_binding": endpoint.channel_binding,
        "connect_timeout": str(endpoint.connect_timeout),
        "application_name": APPLICATION_NAME,
        # The master's sessions must not resolve anything the app database's owner created
        # (components/pgmodel.py, PINNED_SEARCH_PATH); harmless for the login roles' probes.
        "options": PINNED_SEARCH_PATH_OPTIONS,
    }
    if endpoint.sslrootcert:
        params["sslrootcert"] = str(endpoint.sslrootcert)
    if endpoint.hostaddr:
        params["hostaddr"] = endpoint.hostaddr
    params.update(extra)
    return make_conninfo(**params)


def redacted(conninfo: str) -> str:
    """The conninfo with the password replaced: the only form that may be logged or raised."""
    params = conninfo_to_dict(conninfo)
    if "password" in params:
        params["password"] = "********"
    return make_conninfo("", **params)


def connect(endpoint: Endpoint, user: str, password: str, *, autocommit: bool = True, **extra: Any) -> psycopg.Connection:
    """Open a TLS connection. A failure is re-raised with the redacted target, never the password
    (libpq error texts do not contain it, but our message must not either)."""
    conninfo = build_conninfo(endpoint, user, password, **extra)
    try:
        return psycopg.connect(conninfo, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        message = str(exc).replace(password, "********") if password else str(exc)
        raise psycopg.OperationalError(f"cannot connect to {redacted(conninfo)}: {message}") from None


def provider_env(master_password: str) -> dict[str, str]:
    """The environment of the `pulumi` process whose postgresql provider acts as the master: the
    password it reads from PGPASSWORD, and PGOPTIONS pinning the search_path of each of its
    connections (the provider talks through lib/pq, which sends PGOPTIONS as the startup packet's
    `options`, as libpq does; lib/pq v1.10.9 parseEnviron, v1.12.3 Config.Options `env:"PGOPTIONS"`)."""
    return {"PGPASSWORD": master_password, "PGOPTIONS": PINNED_SEARCH_PATH_OPTIONS}
