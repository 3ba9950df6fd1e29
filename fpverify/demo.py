"""`fpverify demo`: the whole system on one machine, on embedded defaults.

registry (FastAPI + SQLite + MQTT ingest + dashboard) <- MQTT broker (private Mosquitto, or the
embedded amqtt broker, MQTT 3.1.1 only) <- three stations (registration desk, pharmacy, inpatient
ward), each a real edge.station.Station driving a SimulatedSensor on a pty through the real
pyfingerprint driver and pressing synthetic fingers from matcher.synth.

Card holders are registered, consented and enrolled through the registry's HTTP API as an
enroller (edge.enroll.Enroller), devices registered by the sysadmin through the API. Then a day is
played: honest patients, someone using another person's card (no_match -> alert, card retained),
poor presses, a proxy pickup by a delegate, bedside rounds with one inpatient missing, and the
pharmacy losing its network (a relay in front of the broker is cut) and catching up from its
outbox when it comes back.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from fpverify.edge.prompts import Prompt, Step

log = logging.getLogger("fpverify.demo")

# The decision threshold of the demo (stricter than matcher.THRESHOLDS, see ensure_thresholds).
# Measured on the demo's 19 synthetic fingers pressed through the simulated sensor's 288x256 window
# (4 bits a pixel), best of 3 enrolled templates: impostors <= 0.251 (684 pairs, 99th percentile
# 0.209); genuine minimum 0.273, 5th percentile 0.399, so about 1-3 % of honest presses are still
# refused (a real no_match, which the demo then shows as such).
DEMO_THRESHOLD = 0.28
# Enrollment's 1:N duplicate check compares enrollment presses (different fingers: <= 0.218 in the
# same measurement; the same finger: median 0.62): a stricter point.
DEMO_DUPLICATE_KEY, DEMO_DUPLICATE_THRESHOLD = "demo_duplicate", 0.32
OPERATING_POINT = "fmr_1e-4"
PASSWORDS = {"supervisor": "demo-supervisor-1", "auditor": "demo-auditor-1", "admin": "demo-sysadmin-1",
             "enroller": "demo-enroller-1"}
ROLES = {"supervisor": "supervisor", "auditor": "auditor", "admin": "sysadmin", "enroller": "enroller"}
SITES = {"city-hospital": "City Hospital 市第一医院", "riverside-pharmacy": "Riverside Pharmacy 滨江定点药店"}
STATIONS = {  # key: (device id, site, purpose, name)
    "desk": ("city-reg-1", "city-hospital", "registration", "Registration desk 1 挂号处"),
    "pharmacy": ("rsp-counter-1", "riverside-pharmacy", "pharmacy", "Pharmacy counter 药店柜台"),
    "ward": ("city-ward-3", "city-hospital", "bedside", "Ward 3 bedside tablet 病房"),
}
NAMES = ["王芳", "李伟", "张敏", "刘洋", "陈静", "杨磊", "赵丽", "黄强", "周婷", "吴军", "徐娜", "孙杰", "马超",
         "朱琳", "胡斌", "郭颖", "何平", "林涛", "罗欣", "高峰", "郑浩"]
ENROLLED_FINGER = 2  # ISO position: right index


# ---- people and their synthetic fingers ----------------------------------------------------------

@dataclass
class Person:
    name: str
    seed: int
    national_id: str
    card: str | None = None  # the card they hold (None: impostor, delegate)
    delegate_id: str | None = None
    _master: Any = None
    _k: Iterator[int] = field(default_factory=lambda: itertools.count(3))  # 0-2 are the enrollment presses
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def master(self):
        with self._lock:
            if self._master is None:
                from fpverify.matcher.synth import generate_finger

                self._master = generate_finger(self.seed)
            return self._master

    def press(self, k: int | None = None):
        """One impression (uint8 image) of this person's finger."""
        from fpverify.matcher.synth import impression

        with self._lock:
            k = next(self._k) if k is None else k
        return impression(self.master(), k, seed=self.seed)[0]


def poor_press(person: Person, kind: int):
    """A press the quality gate refuses: only the fingertip touching, or a dry, faint finger."""
    import numpy as np

    image = person.press()
    if kind % 2 == 0:
        out = np.full_like(image, 255)
        rows = image.shape[0] // 5
        out[-rows:] = image[-rows:]
        return out
    return (255 - (255 - image.astype(np.float32)) * 0.08).astype(np.uint8)


def make_cast(n_holders: int, seed: int = 0) -> dict[str, Any]:
    holders = [Person(NAMES[i % len(NAMES)], seed * 1000 + i + 1, f"11010119{60 + i:02d}0101{i:04d}",
                      card=f"DEMO-{1001 + i}") for i in range(n_holders)]
    delegate = Person("王建国", seed * 1000 + 500, "110101198801019999")  # son of holders[2], 代取药
    impostor = Person("冒名者", seed * 1000 + 900, "110101199909099999")
    unenrolled = Person(NAMES[n_holders % len(NAMES)] + "(未录入)", seed * 1000 + 700, "110101195505055555",
                        card=f"DEMO-{1001 + n_holders}")
    return {"holders": holders, "delegate": delegate, "impostor": impostor, "unenrolled": unenrolled}


# ---- infrastructure: broker, network relay, registry ---------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


class EmbeddedBroker:
    """amqtt in a thread of its own (MQTT 3.1.1 only), for machines without Mosquitto."""

    version = "3.1.1"
    name = "embedded amqtt broker (MQTT 3.1.1)"

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = None
        self.broker = None
        self.thread: threading.Thread | None = None

    def start(self) -> EmbeddedBroker:
        import asyncio

        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop

            async def boot() -> None:
                from amqtt.broker import Broker

                self.broker = Broker({
                    "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                    "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
                })
                await self.broker.start()

            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self.thread.start()
        ready.wait(30)
        if errors:
            raise RuntimeError(f"embedded broker failed to start: {errors[0]}")
        wait_port(self.port)
        return self

    def stop(self) -> None:
        import asyncio

        if self.loop is None or self.broker is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread:
            self.thread.join(10)


class MosquittoBroker:
    version = "5"
    name = "Mosquitto (private, MQTT 5)"

    def __init__(self, workdir: Path) -> None:
        from fpverify.services import PrivateMosquitto

        self.inner = PrivateMosquitto(workdir)
        self.port = self.inner.port

    def start(self) -> MosquittoBroker:
        self.inner.start()
        return self

    def stop(self) -> None:
        self.inner.stop()


def make_broker(kind: str, workdir: Path):
    if kind in ("auto", "mosquitto"):
        try:
            return MosquittoBroker(workdir / "mosquitto").start()
        except RuntimeError:
            if kind == "mosquitto":
                raise
    return EmbeddedBroker().start()


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


def ensure_thresholds() -> str | None:
    """Operate at DEMO_THRESHOLD or stricter (this process only). The thresholds in matcher.THRESHOLDS
    are measured on real fingerprints; synthetic fingers resemble each other more, so at those points
    the 1:N duplicate check would hold most demo enrollments and strangers could pass as holders."""
    from fpverify import matcher
    matcher.THRESHOLDS.setdefault(DEMO_DUPLICATE_KEY, DEMO_DUPLICATE_THRESHOLD)
    measured = float(matcher.THRESHOLDS.get(OPERATING_POINT, 0.0))
    if measured >= DEMO_THRESHOLD:
        return None
    for name in [n for n in matcher.THRESHOLDS if n != DEMO_DUPLICATE_KEY] or [OPERATING_POINT]:
        matcher.THRESHOLDS[name] = max(float(matcher.THRESHOLDS.get(name, 0.0)), DEMO_THRESHOLD)
    return (f"synthetic fingers: the demo decides at score {DEMO_THRESHOLD} instead of the matcher's "
            f"{OPERATING_POINT} = {measured:g} (measured on real fingerprints)")


class Registry:
    """The registry app (API + ingest + dashboard) under uvicorn in a thread."""

    def __init__(self, workdir: Path, broker_port: int, mqtt_version: str, database_url: str | None = None,
                 port: int | None = None) -> None:
        from fpverify.server.core.config import Settings

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            database_url=database_url or f"sqlite:///{workdir / 'registry.db'}", api_port=self.port,
            mqtt_enabled=True, mqtt_host="127.0.0.1", mqtt_port=broker_port, mqtt_version=mqtt_version,
            mqtt_client_id=f"fpverify-registry-demo-{os.getpid()}", national_id_key=os.urandom(16).hex(),
            ingest_batch_wait_ms=20, duplicate_threshold=DEMO_DUPLICATE_KEY)
        self.server = None
        self.thread: threading.Thread | None = None
        self.app = None
        self.db = None

    def start(self) -> Registry:
        import uvicorn

        from fpverify.server.app import create_app
        from fpverify.server.db import Database

        self.db = Database(settings=self.settings)
        self.db.migrate()
        self.app = create_app(self.settings, self.db, start_ingest=True)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="registry-http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the registry did not start")
            time.sleep(0.05)
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
        if self.server is not None:
            self.server.should_exit = True
        if self.thread:
            self.thread.join(30)
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


# ---- stations ---------------------------------------------------------------------------------------

class DeskDisplay:
    """The station's screen, and the hand of whoever stands at the desk: at each prompt to press,
    the next image of the current visit goes onto the simulated sensor; the outcome lifts it."""

    def __init__(self, sim, on_outcome: Callable[[Any, str], None] | None = None) -> None:
        self.sim = sim
        self.images: Iterator | None = None
        self.on_outcome = on_outcome

    def show(self, prompt: Prompt) -> None:
        if prompt.step is Step.PLACE_FINGER:
            image = next(self.images, None) if self.images is not None else None
            if image is None:
                self.sim.lift_finger()
            else:
                self.sim.place_finger(image)
        elif prompt.step is Step.LIFT_FINGER:
            self.sim.lift_finger()

    def outcome(self, result, message: str) -> None:
        self.sim.lift_finger()
        if self.on_outcome:
            self.on_outcome(result, message)


class DemoStation:
    """A real Station (real driver on a simulated sensor's pty) reached through a NetCut relay."""

    def __init__(self, key: str, workdir: Path, registry_url: str, token: str, broker_port: int, mqtt_version: str,
                 on_outcome: Callable[[Any, str], None] | None = None, engine: Any = None) -> None:
        from fpverify.edge.cache import new_key
        from fpverify.edge.config import EdgeConfig
        from fpverify.edge.sensor.simulator import SimulatedSensor
        from fpverify.edge.station import Station
        from fpverify.edge.workflow import Engine

        self.key = key
        self.device_id, self.site_id, self.purpose, self.title = STATIONS[key]
        folder = workdir / f"station-{self.device_id}"
        folder.mkdir(parents=True, exist_ok=True)
        _secret(folder / "cache.key", new_key().hex())
        _secret(folder / "device.token", token)
        self.sim = SimulatedSensor()
        port = self.sim.start()
        self.relay = NetCut(broker_port).start()
        self.cfg = EdgeConfig.model_validate({
            "station": {"device_id": self.device_id, "site_id": self.site_id, "purpose": self.purpose,
                        "threshold": OPERATING_POINT, "min_quality": 40, "max_attempts": 3, "capture_wait_s": 3.0},
            "sensor": {"port": port, "timeout_s": 2.0},
            "cache": {"path": str(folder / "station.db"), "key": {"file": str(folder / "cache.key")}},
            "registry": {"url": registry_url, "device_token": {"file": str(folder / "device.token")},
                         "sync_interval_s": 3.0, "timeout_s": 10.0},
            "mqtt": {"host": "127.0.0.1", "port": self.relay.port, "version": mqtt_version, "keepalive_s": 5,
                     "reconnect_min_s": 0.3, "reconnect_max_s": 2.0, "resend_after_s": 15.0},
        })
        self.display = DeskDisplay(self.sim, on_outcome)
        self.station = Station(self.cfg, display=self.display,
                               engine=engine or Engine(OPERATING_POINT))
        self.lock = threading.Lock()  # one patient at the desk at a time

    def start(self) -> None:
        self.station.start()

    def has_templates(self, card: str, delegate_id: str | None = None) -> bool:
        found = self.station.store.templates_for(card)
        return any(t.delegate_id == delegate_id for t in found) if delegate_id else bool(found)

    def wait_templates(self, card: str, timeout: float, delegate_id: str | None = None,
                       give_up: Callable[[], bool] = lambda: False) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not give_up():
            if self.has_templates(card, delegate_id):
                return True
            if self.station.sync:
                self.station.sync._trigger.set()  # nudge: the TemplatesChanged note may be on its way
            time.sleep(0.2)
        return False

    def visit(self, card: str, images: Iterator, operator: str | None = None):
        with self.lock:
            self.display.images = images
            try:
                return self.station.handle_card(card, operator_id=operator or f"op-{self.key}")
            finally:
                self.display.images = None
                self.sim.lift_finger()

    def outbox_counts(self) -> tuple[int, int]:
        """(results recorded, still waiting for the broker)."""
        ob = self.station.outbox
        return len(ob.history_ids()), ob.count()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.station.stop()
        self.relay.stop()
        self.sim.stop()


def _secret(path: Path, text: str) -> None:
    path.write_text(text + "\n")
    os.chmod(path, 0o600)


class EnrollDisplay:
    """The enrollment reader: each 'place the finger' prompt gets the person's next impression."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.images: Iterator | None = None

    def show(self, prompt: Prompt) -> None:
        if prompt.step is Step.PLACE_FINGER and self.images is not None:
            self.sim.place_finger(next(self.images))
        elif prompt.step is Step.LIFT_FINGER:
            self.sim.lift_finger()

    def outcome(self, result, message: str) -> None:  # pragma: no cover - enrollment shows no outcomes
        pass


# ---- the demo -----------------------------------------------------------------------------------------

@dataclass
class Event:
    at: float  # seconds after the day started
    station: str
    label: str
    card: str
    images: Callable[[], Iterator]
    needs: str | None = None  # a card whose templates the station must have first
    needs_delegate: str | None = None  # ... and this delegate's


class Demo:
    def __init__(self, workdir: Path, holders: int = 20, broker: str = "auto", database_url: str | None = None,
                 external_broker: tuple[int, str] | None = None, port: int | None = None, seed: int = 0,
                 say: Callable[[str], None] | None = None, verbose: bool = False,
                 started_at: float | None = None) -> None:
        self.workdir = workdir
        self.n_holders = holders
        self.broker_kind = broker
        self.database_url = database_url
        self.external_broker = external_broker
        self.port = port
        self.cast = make_cast(holders, seed)
        self.rng = random.Random(seed)
        self.say = say or (lambda text: None)
        self.verbose = verbose
        self.broker = None
        self.registry: Registry | None = None
        self.stations: dict[str, DemoStation] = {}
        self.enrolled: set[str] = set()
        self.enroll_failed: list[str] = []
        self.held_for_review: list[str] = []
        self.enrollment_done = threading.Event()
        self.tokens: dict[str, str] = {}
        self.started_at = started_at or time.monotonic()
        self.first_verification_s: float | None = None
        self.local_outcomes: Counter = Counter()
        self.notes: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queues: dict[str, queue.Queue] = {}
        self._offline_log: list[str] = []

    # -- setup ------------------------------------------------------------------------------------------
    def start(self) -> None:
        note = ensure_thresholds()
        if note:
            self.notes.append(note)
        if self.external_broker:
            port, version = self.external_broker
            broker_port, self.mqtt_version, broker_name = port, version, f"external broker on port {port}"
        else:
            self.broker = make_broker(self.broker_kind, self.workdir)
            broker_port, self.mqtt_version, broker_name = self.broker.port, self.broker.version, self.broker.name
        self.say(f"broker: {broker_name} on 127.0.0.1:{broker_port}")
        self.registry = Registry(self.workdir, broker_port, self.mqtt_version, self.database_url, self.port).start()
        self.registry.create_users()
        self.say(f"registry: {self.registry.url} ({'SQLite' if not self.database_url else 'database given'})")
        admin = Api(self.registry.url, "admin")
        for site, name in SITES.items():
            admin.post("/sites", {"id": site, "name": name})
        for key, (dev, site, _purpose, title) in STATIONS.items():
            self.tokens[key] = admin.post("/devices", {"device_id": dev, "site_id": site, "name": title})["token"]
        admin.close()
        self.enroller_api = Api(self.registry.url, "enroller")
        self._register_people()
        for key in STATIONS:
            self.stations[key] = DemoStation(key, self.workdir, self.registry.url, self.tokens[key], broker_port,
                                             self.mqtt_version, on_outcome=self._on_outcome)
            self.stations[key].start()
            self._queues[key] = queue.Queue()
            t = threading.Thread(target=self._station_worker, args=(key,), name=f"desk-{key}", daemon=True)
            t.start()
            self._threads.append(t)
        self.say("stations: " + ", ".join(f"{s.title} [{s.device_id} @ {s.site_id}]" for s in self.stations.values()))

    def _register_people(self) -> None:
        """Holders, their biometric consent, a delegate and the inpatients, through the API."""
        api = self.enroller_api
        now = datetime.now(UTC)
        people = [*self.cast["holders"], self.cast["unenrolled"]]
        for p in people:
            api.post("/cardholders", {"card_number": p.card, "name": p.name, "national_id": p.national_id})
        for p in self.cast["holders"]:
            api.post(f"/cardholders/{p.card}/consents", {"given_at": (now - timedelta(minutes=5)).isoformat(),
                                                         "scope": "fingerprint identity checks (demo)",
                                                         "witnessed_by": "enroller"})
        holder = self.cast["holders"][2]
        d = self.cast["delegate"]
        body = {"name": d.name, "national_id": d.national_id, "relation": "son 儿子",
                "valid_from": (now - timedelta(days=1)).isoformat(), "valid_until": (now + timedelta(days=180)).isoformat()}
        d.delegate_id = api.post(f"/cardholders/{holder.card}/delegates", body)["id"]
        d.card = holder.card
        for i, p in enumerate(self.inpatients()):
            api.post("/stays", {"card_number": p.card, "site_id": "city-hospital", "ward": "3",
                                "bed": f"{12 + i}", "admitted_at": (now - timedelta(hours=30)).isoformat(),
                                "recheck_interval_hours": 24})

    def inpatients(self) -> list[Person]:
        return self.cast["holders"][-4:]

    def enrollment_order(self) -> list[Person]:
        h = self.cast["holders"]
        first = [h[0], h[1], *self.inpatients()[:3], h[2], self.cast["delegate"], h[3], h[4], h[5]]
        return first + [p for p in h if p not in first]

    def enroll_all(self, people: list[Person] | None = None) -> None:
        """At the registration desk's enrollment reader, one person after another (thread-safe order)."""
        from fpverify.edge.enroll import Enroller, EnrollError
        from fpverify.edge.sensor.driver import SensorDriver
        from fpverify.edge.sensor.simulator import SimulatedSensor
        from fpverify.edge.workflow import Engine

        desk = self.stations["desk"]
        sim = SimulatedSensor()
        port = sim.start()
        driver = SensorDriver(port, timeout_s=2.0)
        driver.open()
        display = EnrollDisplay(sim)
        engine = Engine(OPERATING_POINT)
        enroller = Enroller(desk.cfg, engine, driver, display=display)
        try:
            enroller.login("enroller", PASSWORDS["enroller"])
            for p in people or self.enrollment_order():
                if self._stop.is_set():
                    break
                for attempt in range(2):
                    display.images = (p.press(k) for k in itertools.count(attempt * 3))
                    try:
                        answer = enroller.enroll(p.card, [ENROLLED_FINGER], impressions=3, delegate_id=p.delegate_id)
                    except EnrollError as exc:
                        log.warning("enrollment of %s failed (%s)", p.card, exc)
                        continue
                    if answer.get("status") == "enrolled":
                        self.enrolled.add(p.delegate_id or p.card)
                    else:  # a 1:N hit on another holder: two supervisors must review (Approvals)
                        self.held_for_review.append(p.card)
                    break
                else:
                    self.enroll_failed.append(p.card)
        finally:
            self.enrollment_done.set()
            enroller.close()
            driver.close()
            sim.stop()

    def start_enrollment(self) -> threading.Thread:
        t = threading.Thread(target=self.enroll_all, name="enrollment", daemon=True)
        t.start()
        self._enrollment = t
        return t

    def admit_note(self) -> str:
        missing = self.inpatients()[-1]
        return f"inpatient {missing.card} ({missing.name}) will be missing at the bedside rounds"

    # -- the day ----------------------------------------------------------------------------------------
    def _on_outcome(self, result, message: str) -> None:
        if self.first_verification_s is None:
            self.first_verification_s = time.monotonic() - self.started_at
        self.local_outcomes[result.outcome.value] += 1

    def script(self) -> list[Event]:
        """The scripted part of the day (offsets in seconds)."""
        h = self.cast["holders"]
        a, b, d_holder = h[0], h[1], h[2]
        imp, dele, une = self.cast["impostor"], self.cast["delegate"], self.cast["unenrolled"]
        p1, p2, p3, _missing = self.inpatients()

        def good(p: Person):
            return lambda: (p.press() for _ in range(3))

        def poor(p: Person):
            return lambda: (poor_press(p, k) for k in range(3))

        return [
            Event(0.0, "desk", "honest patient", a.card, good(a), needs=a.card),
            Event(0.0, "ward", "bedside round", p1.card, good(p1), needs=p1.card),
            Event(0.5, "pharmacy", "honest patient", b.card, good(b), needs=b.card),
            Event(1.0, "ward", "bedside round", p2.card, good(p2), needs=p2.card),
            Event(1.5, "pharmacy", "someone else with this card", a.card, good(imp), needs=a.card),
            Event(2.0, "ward", "bedside round", p3.card, good(p3), needs=p3.card),
            Event(2.5, "desk", "poor press", h[3].card, poor(h[3]), needs=h[3].card),
            Event(3.0, "pharmacy", "proxy pickup (代取药)", d_holder.card, good(dele), needs=d_holder.card, needs_delegate=dele.delegate_id),
            Event(3.5, "desk", "poor press", h[4].card, poor(h[4]), needs=h[4].card),
            Event(4.0, "desk", "not enrolled yet", une.card, good(une)),
            Event(4.5, "desk", "poor press", h[5].card, poor(h[5]), needs=h[5].card),
            Event(5.0, "pharmacy", "NETWORK CUT", "", lambda: iter(())),
            Event(5.5, "pharmacy", "honest patient (offline)", b.card, good(b), needs=b.card),
            Event(6.5, "pharmacy", "honest patient (offline)", a.card, good(a), needs=a.card),
            Event(7.0, "desk", "the same stranger again", a.card, good(imp), needs=a.card),
            Event(7.5, "pharmacy", "proxy pickup (offline)", d_holder.card, good(dele), needs=d_holder.card, needs_delegate=dele.delegate_id),
        ]

    OFFLINE_S = 8.0

    def random_event(self, station: str) -> Event | None:
        h = self.cast["holders"]
        if station == "ward":
            pool = self.inpatients()[:3]
        elif station == "pharmacy":  # the pharmacy's regulars; the hospital's patients are others,
            pool = [h[1], h[2], *h[6:11]]  # so a card at both sites within minutes stands out
        else:
            pool = [*h[3:6], *h[11:-4]]
        pool = [p for p in pool if p.card in self.enrolled]
        if not pool:
            return None
        p = self.rng.choice(pool)
        if self.rng.random() < 0.06:
            return Event(0, station, "poor press", p.card, lambda: (poor_press(p, k) for k in range(3)), needs=p.card)
        return Event(0, station, "patient", p.card, lambda: (p.press() for _ in range(3)), needs=p.card)

    def _station_worker(self, key: str) -> None:
        st = self.stations[key]
        q = self._queues[key]
        while not self._stop.is_set():
            try:
                ev: Event = q.get(timeout=0.2)
            except queue.Empty:
                continue
            if ev.label == "NETWORK CUT":
                st.relay.cut(self.OFFLINE_S)
                self.say(f"!! {st.title}: network cut for {self.OFFLINE_S:.0f} s; results wait in its outbox")
                threading.Thread(target=self._watch_reconnect, args=(st,), daemon=True).start()
                continue
            if ev.needs and not st.wait_templates(ev.needs, 60, ev.needs_delegate,
                                                  give_up=self._gives_up(ev.needs_delegate or ev.needs)):
                log.warning("%s: templates for %s never arrived; visit skipped", key, ev.needs)
                continue
            try:
                result = st.visit(ev.card, ev.images())
            except Exception:  # a broken visit must not end the demo
                log.exception("visit at %s failed", key)
                continue
            if result is not None:
                self._print_result(st, ev, result)

    def _gives_up(self, key: str) -> Callable[[], bool]:
        """Stop waiting for templates: the demo ends, or enrollment is over and `key` is not enrolled."""
        def check() -> bool:
            return self._stop.is_set() or (self.enrollment_done.is_set() and key not in self.enrolled)
        return check

    def _watch_reconnect(self, st: DemoStation) -> None:
        while not self._stop.is_set() and not st.relay.online:
            time.sleep(0.2)
        link = st.station.link
        deadline = time.monotonic() + 30
        while not self._stop.is_set() and time.monotonic() < deadline:
            if link and link.connected.is_set() and st.station.outbox.count() == 0:
                self.say(f"!! {st.title}: back online; outbox drained to the registry")
                return
            time.sleep(0.2)

    def _print_result(self, st: DemoStation, ev: Event, result) -> None:
        from fpverify.edge.workflow import MESSAGES

        names = {p.card: p.name for p in [*self.cast["holders"], self.cast["unenrolled"]]}
        pending = st.station.outbox.count()
        queued = f" [queued offline: {pending}]" if not st.relay.online else ""
        self.say(f"{datetime.now().strftime('%H:%M:%S')} {st.title:<28} {ev.label:<30} {result.card_number} "
                 f"{names.get(result.card_number, ''):<6} -> {result.outcome.value}: {MESSAGES[result.outcome]}{queued}")

    def play(self, duration: float | None, pace: float = 2.0) -> None:
        """Run the script, then random traffic every ~`pace` s per station until `duration` (None: until stop)."""
        start = time.monotonic()
        script = sorted(self.script(), key=lambda e: e.at)
        next_random = {k: start + 9.0 + i * 0.7 for i, k in enumerate(STATIONS)}
        while not self._stop.is_set():
            now = time.monotonic()
            if duration is not None and now - start >= duration:
                break
            while script and now - start >= script[0].at:
                ev = script.pop(0)
                self._queues[ev.station].put(ev)
            for key in STATIONS:
                if now >= next_random[key] and self._queues[key].empty():
                    ev = self.random_event(key)
                    if ev is not None:
                        self._queues[key].put(ev)
                    next_random[key] = now + pace * self.rng.uniform(0.6, 1.4) * (2 if key == "ward" else 1)
            self._stop.wait(0.1)

    def visit(self, key: str, person: Person, card: str | None = None, poor: bool = False):
        """One synchronous verification (tests): `person` presses at station `key` with `card`."""
        st = self.stations[key]
        card = card or person.card
        images = (poor_press(person, k) for k in range(3)) if poor else (person.press() for _ in range(3))
        return st.visit(card, images)

    # -- the end ----------------------------------------------------------------------------------------
    def drain(self, timeout: float = 45.0) -> bool:
        """Wait for every queued visit to finish and every result to reach the registry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(not q.empty() for q in self._queues.values()):
            time.sleep(0.2)
        for st in self.stations.values():  # the visit in hand
            with st.lock:
                pass
        recorded = 0
        while time.monotonic() < deadline:
            counts = [st.outbox_counts() for st in self.stations.values()]
            recorded = sum(c[0] for c in counts)
            if all(c[1] == 0 for c in counts) and self.registry_count() >= recorded:
                return True
            time.sleep(0.25)
        return False

    def registry_count(self) -> int:
        from fpverify.server.dashboard import queries

        with self.registry.db.session() as s:
            return queries.total_results(s)

    def summary(self) -> dict:
        from sqlalchemy import func, select

        from fpverify.server.models import Alert, VerificationRecord

        with self.registry.db.session() as s:
            by_outcome = dict(s.execute(select(VerificationRecord.outcome, func.count())
                                        .group_by(VerificationRecord.outcome)).all())
            by_device = dict(s.execute(select(VerificationRecord.device_id, func.count())
                                       .group_by(VerificationRecord.device_id)).all())
            alerts = int(s.scalar(select(func.count()).select_from(Alert)) or 0)
            retained = int(s.scalar(select(func.count()).select_from(Alert).where(Alert.card_retained.is_(True))) or 0)
        stations = {st.device_id: {"recorded": st.outbox_counts()[0], "pending": st.outbox_counts()[1],
                                   "network_cuts": st.relay.cuts} for st in self.stations.values()}
        recorded = sum(v["recorded"] for v in stations.values())
        return {
            "verifications": sum(by_outcome.values()), "by_outcome": by_outcome, "by_device": by_device,
            "alerts_raised": alerts, "cards_retained": retained, "recorded_at_stations": recorded,
            "lost": max(0, recorded - sum(by_outcome.values())), "stations": stations,
            "enrolled": len(self.enrolled), "enroll_failed": self.enroll_failed,
            "held_for_review": self.held_for_review,
            "first_verification_s": None if self.first_verification_s is None else round(self.first_verification_s, 1),
            "mqtt_version": getattr(self, "mqtt_version", None), "notes": self.notes,
        }

    def stop(self) -> None:
        self._stop.set()
        enrollment = getattr(self, "_enrollment", None)
        if enrollment is not None:
            enrollment.join(30)  # finishes the person in hand, then stops
        for t in self._threads:
            t.join(10)
        for st in self.stations.values():
            st.stop()
        if getattr(self, "enroller_api", None):
            self.enroller_api.close()
        if self.registry:
            self.registry.stop()
        if self.broker:
            self.broker.stop()


# ---- the command ------------------------------------------------------------------------------------

def _quiet_logs(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        # The network cut is part of the show: reconnect warnings would only be noise here.
        for name in ("fpverify.edge", "fpverify.server.ingest.worker", "uvicorn", "uvicorn.error", "httpx", "fpverify.demo", "alembic"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _prepare_dir(data_dir: Path | None) -> tuple[Path, bool]:
    """(working folder, remove it at the end). A given folder is emptied first (fresh each run), but
    only if it is empty or was made by an earlier demo."""
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="fpverify-demo-")), True
    data_dir = data_dir.expanduser()
    marker = data_dir / ".fpverify-demo"
    if data_dir.exists() and any(data_dir.iterdir()) and not marker.exists():
        raise typer.BadParameter(f"{data_dir} is not empty and was not made by the demo; choose another folder")
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    marker.write_text("made by fpverify demo; emptied at each run\n")
    return data_dir, False


def demo(headless: bool = typer.Option(False, "--headless", help="no interactive session: play, summarise, exit"),
         duration: float = typer.Option(None, "--duration", help="seconds of the day to play (default: until Ctrl-C;"
                                                                 " 45 with --headless)"),
         port: int = typer.Option(8000, "--port", help="dashboard/API port (a free one if taken)"),
         broker: str = typer.Option("auto", "--broker", help="auto | mosquitto | amqtt"),
         holders: int = typer.Option(20, "--holders", min=8, max=len(NAMES) - 1),
         data_dir: Path = typer.Option(None, "--data-dir", help="keep the demo's files here (emptied first); "
                                                                "default: a temporary folder, removed at the end"),
         summary_json: Path = typer.Option(None, "--summary-json", help="also write the summary here"),
         verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """The whole system on embedded defaults: registry + broker + three simulated stations playing a day."""
    started = time.monotonic()
    from rich.console import Console

    console = Console(highlight=False)
    if broker not in ("auto", "mosquitto", "amqtt"):
        raise typer.BadParameter("--broker: auto, mosquitto or amqtt")
    _quiet_logs(verbose)
    workdir, remove = _prepare_dir(data_dir)
    if headless and duration is None:
        duration = 45.0
    chosen = port if _port_free(port) else free_port()

    lock = threading.Lock()

    def say(text: str) -> None:
        with lock:
            console.print(text, markup=False, soft_wrap=True)

    d = Demo(workdir, holders=holders, broker=broker, port=chosen, say=say, verbose=verbose, started_at=started)
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        say("fpverify demo: starting (Ctrl-C stops everything)")
        d.start()
        say(f"enrolling {holders} card holders and a delegate at the registration desk (through the API, "
            f"with consent); {d.admit_note()}")
        enroll = d.start_enrollment()
        _print_logins(say, d.registry.url)
        d.play(duration)
        if headless or duration is not None:
            enroll.join(5)
            ok = d.drain()
            s = d.summary()
            _print_summary(say, s, ok)
            if summary_json:
                summary_json.write_text(json.dumps(s, indent=2, ensure_ascii=False))
            code = 0 if ok and s["lost"] == 0 and s["verifications"] > 0 else 1
    except KeyboardInterrupt:
        say("stopping ...")
    finally:
        d.stop()
        signal.signal(signal.SIGTERM, old)
        if remove:
            shutil.rmtree(workdir, ignore_errors=True)
    say("demo stopped")
    raise typer.Exit(code)


def _port_free(port: int) -> bool:
    try:
        with socket.create_server(("127.0.0.1", port)):
            return True
    except OSError:
        return False


def _print_logins(say, url: str) -> None:
    say("")
    say(f"Dashboard: {url}/dashboard/   (API docs: {url}/docs)")
    say(f"  supervisor  / {PASSWORDS['supervisor']}   reads everything, acknowledges and resolves alerts")
    say(f"  auditor     / {PASSWORDS['auditor']}      reads everything (query only)")
    say(f"  admin       / {PASSWORDS['admin']}      sysadmin: stations and totals, no personal data")
    say(f"  enroller    / {PASSWORDS['enroller']}     stations' enrollment (API only, no dashboard)")
    say("")


def _print_summary(say, s: dict, drained: bool) -> None:
    say("")
    say("==== summary ====")
    say(f"verifications in the registry: {s['verifications']} (recorded at stations: {s['recorded_at_stations']}, "
        f"lost: {s['lost']}{'' if drained else ', NOT fully drained'})")
    for outcome, n in sorted(s["by_outcome"].items(), key=lambda kv: -kv[1]):
        say(f"  {outcome:<15} {n}")
    say(f"alerts raised: {s['alerts_raised']} (cards retained: {s['cards_retained']})")
    for dev, st in s["stations"].items():
        say(f"  station {dev:<14} recorded {st['recorded']:>4}, pending {st['pending']}, network cuts {st['network_cuts']}")
    say(f"card holders enrolled: {s['enrolled']}" + (f"; failed: {', '.join(s['enroll_failed'])}"
                                                     if s["enroll_failed"] else "")
        + (f"; held for duplicate review: {', '.join(s['held_for_review'])}" if s["held_for_review"] else ""))
    if s["first_verification_s"] is not None:
        say(f"first verification {s['first_verification_s']} s after start")
    for note in s["notes"]:
        say(f"note: {note}")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    app.command("demo")(demo)
