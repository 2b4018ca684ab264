"""Issue 28 item 6: no password is ever handed to a server that asks for it in clear.

A rogue server (the RDS name resolving to a host on the operator's own network, or anything that
holds a certificate `sslmode=require` accepts) speaks just enough of the PostgreSQL protocol
(https://www.postgresql.org/docs/current/protocol-flow.html: SSLRequest -> 'S', TLS, StartupMessage,
then AuthenticationCleartextPassword, 'R' with code 3, or AuthenticationMD5Password, code 5) and
records every byte it receives. Through bootstrap/pgconn.py the client must refuse before sending a
PasswordMessage ('p'); the control case (plain libpq, no require_auth) shows the same server does
receive the password, so the test can fail. The real server (tests/pgserver.py) still accepts
SCRAM, with channel binding.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from pathlib import Path

import psycopg
import pytest

from dbcore import pgconn
from dbcore.pgconn import ConnectionSettingsError, Endpoint, build_conninfo
from tests.pgserver import PgServer, _write_tls_files

PASSWORD = "Master-Password-Sentinel-0123456789"
SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
CLEARTEXT, MD5 = 3, 5


class RogueServer:
    """One connection at a time: TLS with a certificate for localhost, then ask for `auth` and keep what arrives."""

    def __init__(self, tls_dir: Path, auth: int) -> None:
        self.auth = auth
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(tls_dir / "server.crt", tls_dir / "server.key")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.asked = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, conn: socket.socket | ssl.SSLSocket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _serve(self) -> None:
        self.sock.settimeout(15)
        try:
            raw, _ = self.sock.accept()
        except OSError:
            return
        raw.settimeout(10)
        conn: socket.socket | ssl.SSLSocket = raw
        try:
            while True:  # SSLRequest (maybe after a GSSENCRequest, which we decline)
                length, code = struct.unpack("!ii", self._read(conn, 8))
                if code == GSSENC_REQUEST:
                    conn.sendall(b"N")
                    continue
                assert code == SSL_REQUEST, code
                conn.sendall(b"S")
                conn = self.ctx.wrap_socket(raw, server_side=True)
                break
            (length,) = struct.unpack("!i", self._read(conn, 4))
            self._read(conn, length - 4)  # StartupMessage: protocol, user, database, ...
            body = struct.pack("!i", self.auth) + (b"salt" if self.auth == MD5 else b"")
            conn.sendall(b"R" + struct.pack("!i", 4 + len(body)) + body)
            self.asked.set()
            while True:  # everything the client sends after the request
                chunk = conn.recv(4096)
                if not chunk:
                    break
                self.received += chunk
        except (OSError, ConnectionError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rogue-tls")
    _write_tls_files(d)  # a CA and a certificate for localhost: the worst case, a rogue that verifies
    return d


@pytest.mark.parametrize("auth", [CLEARTEXT, MD5], ids=["cleartext", "md5"])
@pytest.mark.parametrize("sslmode", ["require", "verify-full"])
def test_a_server_asking_for_a_weaker_method_receives_nothing(tls_dir: Path, sslmode: str, auth: int) -> None:
    rogue = RogueServer(tls_dir, auth)
    ca = str(tls_dir / "ca.crt") if sslmode == "verify-full" else None
    with pytest.raises(psycopg.OperationalError) as exc:
        pgconn.connect(Endpoint(host="localhost", port=rogue.port, sslmode=sslmode, sslrootcert=ca, connect_timeout=5), "shop_master", PASSWORD)
    rogue.close()
    assert rogue.asked.is_set(), "the rogue never got to ask: the test proved nothing"
    assert 'authentication method requirement "scram-sha-256" failed' in str(exc.value)
    assert PASSWORD.encode() not in rogue.received and not rogue.received.startswith(b"p"), rogue.received[:40]
    assert PASSWORD not in str(exc.value)


def test_control_plain_libpq_hands_the_password_over(tls_dir: Path) -> None:
    """Without require_auth the same server gets the password in clear: what the issue observed."""
    rogue = RogueServer(tls_dir, CLEARTEXT)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="localhost", port=rogue.port, user="shop_master", password=PASSWORD, sslmode="require", connect_timeout=5)
    rogue.close()
    assert rogue.received.startswith(b"p") and PASSWORD.encode() in rogue.received


def test_every_conninfo_pins_scram_and_cannot_be_overridden(tmp_path: Path) -> None:
    info = psycopg.conninfo.conninfo_to_dict(build_conninfo(Endpoint(host="db", port=5432, sslmode="require"), "u", "p"))
    assert (info["require_auth"], info["channel_binding"]) == ("scram-sha-256", "prefer")
    for key in ("require_auth", "channel_binding", "sslmode"):
        with pytest.raises(ConnectionSettingsError, match="cannot be overridden"):
            build_conninfo(Endpoint(host="db", port=5432, sslmode="require"), "u", "p", **{key: "disable"})
    with pytest.raises(ConnectionSettingsError, match="channel_binding 'disable' is not allowed"):
        build_conninfo(Endpoint(host="db", port=5432, sslmode="require", channel_binding="disable"), "u", "p")


def test_the_real_server_accepts_scram_with_channel_binding_required(pg: PgServer) -> None:
    user = "scram_only_master"
    pg.make_rds_master(user, PASSWORD)
    ep = Endpoint(host="localhost", port=pg.port, sslmode="verify-full", sslrootcert=str(pg.ca_file), connect_timeout=5, channel_binding="require")
    with pgconn.connect(ep, user, PASSWORD) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)


def test_prod_refuses_a_downgraded_sslmode_on_the_command_line(pulumi_double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`--sslmode require` used to override prod's verify-full for one run; now it stops before any pulumi or AWS call."""
    from tests.deploy_world import run

    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "scram passphrase")
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    for sslmode in ("require", "verify-ca"):
        rc, out, err = run(d, capsys, "deploy", "--stack", "prod", "--yes", "--sslmode", sslmode)
        assert rc == 2 and f"--sslmode {sslmode} is refused for prod stack prod" in err, err
    assert [c["argv"] for c in d.calls() if c["argv"] != ["version"]] == []
