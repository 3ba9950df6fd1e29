"""A small real HTTP server standing in for the registry's station-facing endpoints in edge tests.

It answers over a real socket with bodies the test scripts (feed pages by `since`, raw garbage,
error codes), and records each request (path, headers, JSON body) so tests can check what the
station sent. The registry itself is tested in tests/server.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class RegistryServer:
    def __init__(self) -> None:
        self.feeds: dict[int, tuple[int, bytes]] = {}  # since -> (status, body)
        self.login: tuple[int, bytes] = (200, json.dumps({"access_token": "op-token", "token_type": "bearer",
                                                          "role": "enroller"}).encode())
        self.enroll: tuple[int, bytes] = (201, b"{}")
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urlparse(self.path)
                outer.requests.append({"method": "GET", "path": url.path, "query": parse_qs(url.query),
                                       "auth": self.headers.get("Authorization")})
                since = int(parse_qs(url.query).get("since", ["0"])[0])
                status, body = outer.feeds.get(since, (404, b'{"detail": "no such page"}'))
                self._reply(status, body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                outer.requests.append({"method": "POST", "path": self.path, "body": body,
                                       "auth": self.headers.get("Authorization")})
                if self.path == "/api/v1/auth/login":
                    self._reply(*outer.login)
                elif self.path == "/api/v1/enrollments":
                    self._reply(*outer.enroll)
                else:
                    self._reply(404, b"{}")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set_feed(self, since: int, feed_or_body, status: int = 200) -> None:
        body = feed_or_body if isinstance(feed_or_body, bytes) else feed_or_body.model_dump_json().encode()
        self.feeds[since] = (status, body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
