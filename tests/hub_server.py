"""A tiny stand-in for the Hugging Face hub on 127.0.0.1, for the real ``huggingface_hub`` client.

It answers ``HEAD``/``GET /{repo}/resolve/{revision}/{path}`` with the headers the client reads
(``X-Repo-Commit``, ``ETag``, ``Content-Length``), supports ``Range`` resumes, counts requests,
and can misbehave on purpose: serve corrupt bytes, or cut a transfer off halfway.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # "repo/path" -> content
        self.truncate: set[str] = set()  # "repo/path" whose GETs stop halfway
        self.requests: Counter = Counter()  # (method, "repo/path") -> count
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _lookup(self):
                parts = self.path.split("?")[0].lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self.path, None
                key = "/".join(parts[:2] + parts[4:])
                return key, hub.files.get(key)

            def _headers(self, status, content, length):
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def _missing(self):
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Error-Message", "Entry not found")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self):
                key, content = self._lookup()
                hub.requests["HEAD", key] += 1
                if content is None:
                    return self._missing()
                self._headers(200, content, len(content))

            def do_GET(self):
                key, content = self._lookup()
                hub.requests["GET", key] += 1
                if content is None:
                    return self._missing()
                start = 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0] or 0)
                body = content[start:]
                self._headers(206 if start else 200, content, len(body))
                if key in hub.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class DeadEndpoint:
    """A hub address that does not work, for the no-network tests (127.0.0.1 only, bounded in time).

    ``refuse``: a bound port nobody listens on, so every connection is refused at once.
    ``silent``: a port that accepts connections and never answers (a blackholed hub or a stuck
    proxy); ``connections`` counts them, so a test can tell how many attempts a client made.
    """

    def __init__(self, mode: str) -> None:
        import socket

        self.mode = mode
        self.connections = 0
        self._held: list = []
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        if mode == "silent":
            self.sock.listen(16)
            self.sock.settimeout(0.2)
            self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            self._held.append(conn)  # never read, never answered

    def __enter__(self) -> DeadEndpoint:
        if self.mode == "silent":
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.mode == "silent":
            self.thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self.sock.close()
