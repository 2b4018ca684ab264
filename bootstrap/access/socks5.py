"""A loopback SOCKS5 endpoint (RFC 1928) that maps exactly one name:port pair onto the tunnel.

Why: the postgresql provider dials `host` itself, so pointing it at 127.0.0.1 would make its
`verify-full` check the certificate against 127.0.0.1 and fail (the RDS certificate names the
endpoint). It honours ALL_PROXY=socks5://... for the postgres scheme and sends the *name* to the
proxy unresolved; this server forwards that name to the local end of the SSM tunnel, so the
provider's TLS handshake still verifies the RDS name.

Deliberately small: CONNECT only, "no authentication" only (it listens on 127.0.0.1 and lives as
long as one tunnel), and every destination other than the mapped ones is refused with reply 0x02
("connection not allowed by ruleset"): it is no general-purpose proxy.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Mapping

VERSION = 5
NO_AUTH = 0x00
NO_ACCEPTABLE_METHOD = 0xFF
CMD_CONNECT = 0x01
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 0x01, 0x03, 0x04
REP_SUCCEEDED = 0x00
REP_GENERAL_FAILURE = 0x01
REP_NOT_ALLOWED = 0x02
REP_CONNECTION_REFUSED = 0x05
REP_COMMAND_NOT_SUPPORTED = 0x07
REP_ADDRESS_TYPE_NOT_SUPPORTED = 0x08


class ProtocolError(Exception):
    pass


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ProtocolError("client closed the connection during the SOCKS handshake")
        data += chunk
    return data


def _reply(sock: socket.socket, code: int, bound: tuple[str, int] = ("0.0.0.0", 0)) -> None:
    sock.sendall(struct.pack("!BBBB", VERSION, code, 0, ATYP_IPV4) + socket.inet_aton(bound[0]) + struct.pack("!H", bound[1]))


def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both sides have finished; closes both sockets."""

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join()
    for s in (a, b):
        with contextlib.suppress(OSError):
            s.close()


class Socks5Server:
    """`routes` maps (host name, port) as the client names it onto the (host, port) actually dialed."""

    def __init__(self, routes: Mapping[tuple[str, int], tuple[str, int]], listen: str = "127.0.0.1", port: int = 0):
        self.routes = {(h.lower().rstrip("."), p): target for (h, p), target in routes.items()}
        self._sock = socket.create_server((listen, port))
        self._sock.settimeout(0.2)  # closing a socket does not wake a blocked accept(); poll instead
        self.port = int(self._sock.getsockname()[1])
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self.refused: list[str] = []  # destinations refused, for the caller's diagnostics

    def start(self) -> Socks5Server:
        self._thread = threading.Thread(target=self._serve, name=f"socks5-{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Socks5Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)  # the handshake only; the relay then runs without a timeout
        try:
            upstream = self._handshake(client)
        except (ProtocolError, OSError):
            with contextlib.suppress(OSError):
                client.close()
            return
        if upstream is None:
            with contextlib.suppress(OSError):
                client.close()
            return
        client.settimeout(None)
        relay(client, upstream)

    def _handshake(self, client: socket.socket) -> socket.socket | None:
        version, nmethods = _recv_exact(client, 2)
        if version != VERSION:
            raise ProtocolError(f"not SOCKS5 (version {version})")
        methods = _recv_exact(client, nmethods)
        if NO_AUTH not in methods:
            client.sendall(bytes([VERSION, NO_ACCEPTABLE_METHOD]))
            return None
        client.sendall(bytes([VERSION, NO_AUTH]))
        version, cmd, _rsv, atyp = _recv_exact(client, 4)
        if version != VERSION:
            raise ProtocolError(f"not SOCKS5 (version {version})")
        if atyp == ATYP_IPV4:
            host = socket.inet_ntoa(_recv_exact(client, 4))
        elif atyp == ATYP_DOMAIN:
            host = _recv_exact(client, _recv_exact(client, 1)[0]).decode("ascii", errors="replace")
        elif atyp == ATYP_IPV6:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exact(client, 16))
        else:
            _reply(client, REP_ADDRESS_TYPE_NOT_SUPPORTED)
            return None
        (port,) = struct.unpack("!H", _recv_exact(client, 2))
        if cmd != CMD_CONNECT:
            _reply(client, REP_COMMAND_NOT_SUPPORTED)
            return None
        target = self.routes.get((host.lower().rstrip("."), port))
        if target is None:
            self.refused.append(f"{host}:{port}")
            _reply(client, REP_NOT_ALLOWED)
            return None
        try:
            upstream = socket.create_connection(target, timeout=15)
        except OSError:
            _reply(client, REP_CONNECTION_REFUSED)
            return None
        upstream.settimeout(None)
        bound_host, bound_port = upstream.getsockname()[:2]
        _reply(client, REP_SUCCEEDED, (bound_host, bound_port))
        return upstream
