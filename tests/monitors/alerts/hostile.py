"""Real, misbehaving servers on 127.0.0.1 for the delivery tests (and the delivery benchmark).

:class:`HostileServer` speaks just enough HTTP to be a webhook, and can change its behaviour
between monitoring passes: ``ok`` (200, the page is accepted), ``http500``, ``garbage`` (a
non-HTTP answer), ``silent`` (reads the request, never answers), ``drip`` (answers one byte per
second). Closing it and starting a new one on the same port gives "connection refused" and then
a recovery at the same URL.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

MODES = ("ok", "http500", "garbage", "silent", "drip")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HostileServer:
    def __init__(self, mode: str = "ok", port: int = 0):
        assert mode in MODES, mode
        self.mode = mode
        self.accepted: list[dict[str, Any]] = []   # pages answered 200 (delivered, from the receiver's side)
        self.requests = 0                           # every request that arrived, whatever the answer
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._stop.set()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> tuple[dict[str, str], bytes] | None:
        conn.settimeout(0.2)
        data = b""
        while b"\r\n\r\n" not in data:
            if self._stop.is_set():
                return None
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length and not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            body += chunk
        return headers, body

    def _handle(self, conn: socket.socket) -> None:
        try:
            request = self._read_request(conn)
            if request is None:
                return
            headers, body = request
            with self._lock:
                self.requests += 1
            mode = self.mode
            if mode == "ok":
                with self._lock:
                    self.accepted.append({"body": json.loads(body), "headers": headers})
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            elif mode == "http500":
                conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            elif mode == "garbage":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6 not a web server\r\n\r\n")
            elif mode == "silent":
                self._stop.wait()
            elif mode == "drip":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok":
                    if self._stop.wait(1.0):
                        break
                    conn.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            conn.close()


class SilentTcpServer(HostileServer):
    """Accepts connections and never says a word (an SMTP server that never greets)."""

    def __init__(self) -> None:
        super().__init__("silent")

    def _handle(self, conn: socket.socket) -> None:
        self._stop.wait()
        conn.close()


def wait_until(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
