"""The kiosk page and the HIS API, each under its own uvicorn in a thread of the station process
(the page on localhost; the HIS API where his.host says), plus the watcher that keeps the page's
"offline / results waiting" line current."""

from __future__ import annotations

import logging
import threading
import time

from fpverify.edge.config import ConfigError, EdgeConfig
from fpverify.edge.kiosk.desk import Desk
from fpverify.edge.kiosk.display import KioskDisplay

log = logging.getLogger("fpverify.edge.kiosk")


class ThreadedServer:
    """An ASGI app under uvicorn in a daemon thread of this process (`options` go to uvicorn.Config).
    The station's page and HIS API use it; so do the demo and the tests (fpverify.services.ServedApp)."""

    def __init__(self, app, host: str, port: int, name: str, **options) -> None:
        import uvicorn

        config = {"log_level": "warning", "access_log": False, **options}
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **config))
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)
        self.name = name
        self._port = port  # 0: any free port, known once started

    def start(self, timeout: float = 20.0):
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the {self.name} server did not start (is port {self._port} taken?)")
            time.sleep(0.02)
        if not self._port:
            self._port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def port(self) -> int:
        return self._port

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)


class KioskService:
    """Start after the station; `url` is the page the kiosk browser opens."""

    def __init__(
        self, station, display: KioskDisplay, cfg: EdgeConfig | None = None, status_every_s: float = 1.0
    ) -> None:
        from fpverify.edge.kiosk.app import create_kiosk_app
        from fpverify.edge.kiosk.his import create_his_app

        self.cfg = cfg or station.cfg
        self.station, self.display = station, display
        display.placement_source = lambda: station.guard.placement if station.guard else None
        self.desk = Desk(station)
        default_purpose = station.cfg.station.purpose.value
        self.desk.on_start = lambda job: display.set_purpose(job.purpose or default_purpose)
        display.set_purpose(default_purpose)
        k, h = self.cfg.kiosk, self.cfg.his
        self.kiosk = ThreadedServer(
            create_kiosk_app(display.hub, self.desk, station, k.language), k.host, k.port, "kiosk",
            lifespan="off", timeout_graceful_shutdown=1,
        )
        self.his = None
        if h.enabled:
            token = h.token.read_text()
            try:
                app = create_his_app(self.desk, station, token, h.max_wait_s)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            self.his = ThreadedServer(app, h.host, h.port, "his-api", lifespan="off", timeout_graceful_shutdown=1)
        self.status_every_s = status_every_s
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="kiosk-status", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.cfg.kiosk.host}:{self.kiosk.port}/kiosk"

    @property
    def his_url(self) -> str | None:
        return f"http://{self.cfg.his.host}:{self.his.port}" if self.his else None

    def start(self) -> KioskService:
        self._publish_status()
        self.display.idle()
        self.desk.start()
        self.kiosk.start()
        if self.his:
            self.his.start()
        self._watcher.start()
        log.info("kiosk page at %s%s", self.url, f"; HIS API at {self.his_url}" if self.his else "")
        return self

    def stop(self) -> None:
        self._stop.set()
        self.desk.stop()
        self.display.hub.close()  # open pages' event streams end, so the server stops gracefully
        for http in (self.his, self.kiosk):
            if http:
                http.stop()
        self.display.close()

    def _publish_status(self) -> None:
        try:
            self.display.hub.publish(status=self.station.status())
        except Exception as exc:  # a store being closed at shutdown; the next tick tries again
            log.debug("status not available: %s", exc)

    def _watch(self) -> None:
        while not self._stop.wait(self.status_every_s):
            self._publish_status()
