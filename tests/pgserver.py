"""A throwaway PostgreSQL server that behaves like RDS where it matters to us.

* TLS on, with a CA and server certificate generated per run (so `sslmode=verify-full` can be
  tested against `ca.crt`, as clients do with the RDS CA bundle);
* pg_hba admits TCP only as `hostssl ... scram-sha-256`: a plaintext connection is refused,
  like `rds.force_ssl=1`;
* `password_encryption=scram-sha-256`, `log_connections`, `log_disconnections` and
  `log_statement=all` (so a test can prove a password never reaches the server log), plus
  `pg_stat_statements` (so a test can prove it never reaches the statement statistics);
* a bootstrap superuser the tests keep to themselves, and `make_rds_master()` that creates a
  master role the way RDS does: LOGIN CREATEROLE CREATEDB, not SUPERUSER, in an rds_superuser
  group. Every app role is created and altered by that master, never by the superuser (on 16+
  only the role's creator holds ADMIN on it, so the superuser would hide real failures);
* one major per run: $PGHOME_PG_MAJOR (default: the default engine's major in Pulumi.yaml),
  binaries from Debian's package or `.ci/pg-binaries.sh`.

Why not pytest-postgresql: we need TLS, custom pg_hba rules, a generated CA and running as the
`postgres` OS user when the tests run as root (CI); a hundred lines of initdb/pg_ctl are simpler
than bending its fixtures to all of that.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

SUPERUSER = "pgtest_super"


REPO = Path(__file__).resolve().parent.parent
MAJOR_ENV = "PGHOME_PG_MAJOR"
RDS_SUPERUSER = "rds_superuser"


def default_major() -> int:
    """The major of the default engine version (Pulumi.yaml's dbEngineVersion default)."""
    import yaml

    schema = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    return int(str(schema["config"]["dbEngineVersion"]["default"]).split(".")[0])


def server_major() -> int:
    """The major the PostgreSQL tests run on: $PGHOME_PG_MAJOR, else the default engine's major."""
    from config.limits import PG_MAJOR_VERSIONS

    raw = os.environ.get(MAJOR_ENV, "").strip() or str(default_major())
    if not raw.isdigit() or int(raw) not in PG_MAJOR_VERSIONS:
        allowed = ", ".join(map(str, PG_MAJOR_VERSIONS))
        raise RuntimeError(f"{MAJOR_ENV}={raw!r} is not a PostgreSQL major the config allows ({allowed})")
    return int(raw)


def find_bindir(major: int | None = None) -> Path:
    """initdb/pg_ctl/postgres of one major: Debian's package, else the cache, provisioned on first
    use (tests/pgbinaries.py); the real path, since the 'postgres' OS user may not traverse the clone."""
    from tests.pgbinaries import ensure

    return ensure(major if major is not None else server_major())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_tls_files(directory: Path, dns_names: tuple[str, ...] = ()) -> None:
    """A CA and a server certificate for localhost/127.0.0.1 (or only `dns_names`, like an RDS
    certificate naming its endpoint), both valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own per server: a bundle of several servers' CAs (like the RDS global bundle) must tell them apart.
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"pghome test CA {os.urandom(4).hex()}")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in dns_names] or [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(pem))
    (directory / "server.crt").write_bytes(cert.public_bytes(pem))
    key_path = directory / "server.key"
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)


def encrypted(conn: Any) -> bool:
    """The server's own view of this connection: TLS or not (pg_stat_ssl), never the client's belief."""
    return conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


@dataclass
class PgServer:
    """A running server. `dsn(...)` builds connection strings; `stop()` removes everything."""

    root: Path
    port: int
    bindir: Path
    superuser_password: str
    _run_as: str | None
    major: int = 0
    cert_names: tuple[str, ...] = ()  # DNS names of the server certificate; empty: localhost + 127.0.0.1

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def ca_file(self) -> Path:
        return self.root / "data" / "ca.crt"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @classmethod
    def start(cls, major: int | None = None, cert_names: tuple[str, ...] = ()) -> PgServer:
        major = major if major is not None else server_major()
        bindir = find_bindir(major)
        root = Path(tempfile.mkdtemp(prefix="pghome-pg-"))
        run_as = None
        if os.geteuid() == 0:  # initdb refuses root; run the server as the postgres OS user
            run_as = "postgres"
            pw = pwd.getpwnam(run_as)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        root.chmod(0o700)
        server = cls(
            root=root, port=_free_port(), bindir=bindir, superuser_password=os.urandom(16).hex(), _run_as=run_as, major=major, cert_names=cert_names
        )
        server._init()
        server._start()
        return server

    def _start(self, attempts: int = 3) -> None:
        """pg_ctl start; when another process took the port between `_free_port` and the bind
        (parallel test workers, other majors' runs), move to a fresh port and try again."""
        for attempt in range(attempts):
            try:
                self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_file))
                return
            except subprocess.CalledProcessError:
                log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
                if attempt == attempts - 1 or "in use" not in log:
                    raise
                self.port = _free_port()
                with open(self.data_dir / "postgresql.conf", "a") as conf:
                    conf.write(f"port = {self.port}\n")  # the last setting wins

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", self._run_as, "--"] if self._run_as else []) + list(args)

    def _chown(self, path: Path) -> None:
        if self._run_as:
            pw = pwd.getpwnam(self._run_as)
            for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def _init(self, *initdb_args: str) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.superuser_password)
        self._chown(pwfile)
        subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--pwfile", str(pwfile),
                "-A", "scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", *initdb_args,
            ),
            check=True,
            capture_output=True,
        )
        pwfile.unlink()
        _write_tls_files(self.data_dir, self.cert_names)
        self._chown(self.data_dir)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# pghome test server (RDS-like settings)\n"
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n"
                "ssl_min_protocol_version = 'TLSv1.2'\n"
                "password_encryption = 'scram-sha-256'\n"
                "log_connections = on\nlog_disconnections = on\nlog_statement = 'all'\n"
                "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
            )
        # TLS-only over TCP (what rds.force_ssl=1 enforces); the unix socket is for the harness.
        (self.data_dir / "pg_hba.conf").write_text(
            "local   all  all                 scram-sha-256\n"
            "hostssl all  all  127.0.0.1/32    scram-sha-256\n"
            "hostnossl all all 127.0.0.1/32    reject\n"
        )
        self._chown(self.data_dir)

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args), check=True, capture_output=True)

    def upgrade(self, major: int) -> float:
        """pg_upgrade this cluster to `major` in place (what an RDS major-version upgrade runs):
        same port, superuser and settings, a fresh TLS certificate at the same path. Returns seconds."""
        started = time.monotonic()
        old_bindir, old_data = self.bindir, self.root / f"data-{self.major}"
        self._pg_ctl("stop", "-m", "fast", "-w")
        self.data_dir.rename(old_data)
        old_major, self.bindir, self.major = self.major, find_bindir(major), major
        # 18's initdb turns data checksums on by default; pg_upgrade needs both clusters alike.
        self._init(*(["--no-data-checksums"] if major >= 18 > old_major else []))
        env = {**os.environ, "PGPASSWORD": self.superuser_password}
        result = subprocess.run(
            self._cmd(
                str(self.bindir / "pg_upgrade"), "-b", str(old_bindir), "-B", str(self.bindir), "-d", str(old_data), "-D", str(self.data_dir),
                "-U", SUPERUSER, "-p", str(_free_port()), "-P", str(_free_port()), "-s", str(self.root),
            ),
            cwd=self.root, env=env, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_upgrade to {major} failed:\n{result.stdout[-3000:]}")
        shutil.rmtree(old_data, ignore_errors=True)
        self._start()
        return time.monotonic() - started

    def reload(self, timeout_s: float = 10.0) -> None:
        """Re-read the configuration and return once the postmaster has: a new session's
        pg_conf_load_time() moves past the one before the signal (a fixed sleep was a guess that a
        loaded machine could outrun, and a waste on an idle one). No one-line mutation shows the race
        deterministically; tests/test_pgserver.py checks the postcondition."""
        with self.connect_super() as conn:
            before = conn.execute("SELECT pg_conf_load_time()").fetchone()[0]  # type: ignore[index]
        self._pg_ctl("reload")
        deadline = time.monotonic() + timeout_s
        while True:
            with self.connect_super() as conn:
                if conn.execute("SELECT pg_conf_load_time() > %s", (before,)).fetchone()[0]:  # type: ignore[index]
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not reload its configuration within {timeout_s:.0f}s")
            time.sleep(0.02)

    def stop(self) -> None:
        try:
            self._pg_ctl("stop", "-m", "fast", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, user: str, password: str, dbname: str = "postgres", sslmode: str = "verify-full", **extra: str) -> str:
        params = {
            "host": "localhost" if sslmode == "verify-full" else "127.0.0.1",
            "port": str(self.port),
            "user": user,
            "password": password,
            "dbname": dbname,
            "sslmode": sslmode,
            "connect_timeout": "5",
            **extra,
        }
        if sslmode in ("verify-ca", "verify-full"):
            params.setdefault("sslrootcert", str(self.ca_file))
        return psycopg.conninfo.make_conninfo(**params)

    def connect_super(self, dbname: str = "postgres", autocommit: bool = True) -> psycopg.Connection:
        """Superuser connection over TLS, for setting up and inspecting; never what the product uses."""
        return psycopg.connect(self.dsn(SUPERUSER, self.superuser_password, dbname), autocommit=autocommit)

    def make_rds_master(self, name: str, password: str) -> None:
        """A master role as RDS makes it: LOGIN CREATEROLE CREATEDB, not SUPERUSER, member of an
        `rds_superuser`-like group (NOLOGIN; here it carries only pg_read_all_stats: the patched
        powers RDS gives the real one cannot be reproduced on a community server)."""
        with self.connect_super() as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (RDS_SUPERUSER,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(RDS_SUPERUSER)))
                conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(RDS_SUPERUSER)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(RDS_SUPERUSER), sql.Identifier(name)))

    def connect_as(self, user: str, password: str, dbname: str = "postgres") -> psycopg.Connection:
        """An autocommit TLS connection as any role (the master, in the fixtures)."""
        return psycopg.connect(self.dsn(user, password, dbname), autocommit=True)

    def can_login(self, user: str, password: str, dbname: str = "postgres") -> bool:
        try:
            with psycopg.connect(self.dsn(user, password, dbname)):
                return True
        except psycopg.OperationalError:
            return False
