"""The SCRAM-SHA-256 verifier PostgreSQL stores for a password, computed on the client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The verifier PostgreSQL stores for `password` (RFC 5802 / 7677), computed client-side.

    Sending this instead of the password means the clear text never reaches the server. Our
    passwords are ASCII, so SASLprep is the identity.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
