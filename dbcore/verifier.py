"""The SCRAM-SHA-256 verifier PostgreSQL stores for a password, computed by libpq on the client.

`ALTER ROLE ... PASSWORD '<verifier>'` instead of the password means the clear text never reaches
the server, its logs or pg_stat_statements. libpq's `PQencryptPasswordConn` (psycopg:
`PGconn.encrypt_password`) does the SCRAM work (salt, SASLprep, iterations) exactly as `psql`'s
`\\password` does, so no hand-written crypto stays in the project.
"""

from __future__ import annotations

from typing import Any

ALGORITHM = b"scram-sha-256"


def scram_verifier(conn: Any, user: str, password: str) -> str:
    """The verifier for `user`/`password`, made by libpq on `conn`'s client side (nothing is sent).

    `conn` is an open psycopg connection; the algorithm is fixed, so libpq does not ask the server
    for its `password_encryption` setting."""
    return bytes(conn.pgconn.encrypt_password(password.encode("utf-8"), user.encode("utf-8"), ALGORITHM)).decode("ascii")
