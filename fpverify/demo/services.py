"""The demo's services: the registry (API + ingest + dashboard) in this process, a logged-in API
client, and a network relay that can cut one station off the broker. Brokers and the HTTP server
come from fpverify.services, the one way tests, benchmarks and the demo start services."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any

from fpverify.demo.cast import PASSWORDS, ROLES
from fpverify.demo.settings import registry_settings
from fpverify.services import ServedApp, free_port


class DemoRegistry:
    """The registry app on SQLite (or a given database) under uvicorn in a thread, with the demo's staff."""

    def __init__(self, workdir: Path, broker_port: int, mqtt_version: str, database_url: str | None = None,
                 port: int | None = None, **settings: Any) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = registry_settings(database_url or f"sqlite:///{workdir / 'registry.db'}", self.port,
                                          broker_port, mqtt_version, **settings)
        self.served: ServedApp | None = None
        self.app: Any = None
        self.db: Any = None

    def start(self) -> DemoRegistry:
        from fpverify.server.app import create_app
        from fpverify.server.db import Database

        self.db = Database(settings=self.settings)
        self.db.migrate()
        self.app = create_app(self.settings, self.db, start_ingest=True)
        self.served = ServedApp(self.app, self.port, lifespan="on").start()
        worker = self.app.state.ingest
        if worker is not None and not worker.wait_ready(30):
            raise RuntimeError("the registry's MQTT ingest could not subscribe to the broker")
        return self

    def create_users(self) -> None:
        from fpverify.server.crud import users

        with self.db.session() as s:
            for username, role in ROLES.items():
                users.create_user(s, "demo-setup", username, PASSWORDS[username], role)
            s.commit()

    def stop(self) -> None:
        if self.served is not None:
            self.served.stop()
        if self.db is not None:
            self.db.dispose()


class Api:
    """A logged-in HTTP client of the registry's API."""

    def __init__(self, base: str, username: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base, timeout=30)
        r = self.client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORDS[username]})
        r.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def post(self, path: str, body: dict, ok=(200, 201)) -> dict:
        r = self.client.post(f"/api/v1{path}", json=body)
        if r.status_code not in ok:
            raise RuntimeError(f"POST {path} -> {r.status_code}: {r.text[:300]}")
        return r.json()

    def get(self, path: str, **params) -> Any:
        r = self.client.get(f"/api/v1{path}", params=params)
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        self.client.close()


class NetCut:
    """A TCP relay between one station and the broker. cut(s) drops its connections and refuses new
    ones for s seconds: the station's network cable pulled, the broker sending its last will."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.down_until = 0.0
        self.cuts = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"netcut-{self.port}", daemon=True)

    @property
    def online(self) -> bool:
        return time.monotonic() >= self.down_until

    def start(self) -> NetCut:
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.online:
                conn.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                up.settimeout(None)
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._pairs.append((conn, up))
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut(self, seconds: float) -> None:
        self.down_until = time.monotonic() + seconds
        self.cuts += 1
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
        self.server.close()
        self.cut(0)
        self._thread.join(2)
