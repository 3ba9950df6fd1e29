"""The running station: config -> key -> encrypted store -> sensor, matcher, MQTT link, template sync.

Card numbers arrive from stdin (a USB card reader types the number and Enter), from a local unix
socket (one number per line; the station answers each with the result as one JSON line), or, with
`[kiosk]` enabled, from the kiosk page and the desk's HIS (edge/kiosk). Every path reads the card
with `edge.kiosk.cards.parse_card` (the accepted formats are documented there).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from fpverify.edge.cache import Store, parse_key
from fpverify.edge.config import ConfigError, EdgeConfig
from fpverify.edge.kiosk.cards import BadRead, parse_card
from fpverify.edge.kiosk.desk import Cancelled, GuardedSensor
from fpverify.edge.outbox import Outbox
from fpverify.edge.prompts import Prompt, Step
from fpverify.edge.wire import HolderRole, Purpose, VerificationResult
from fpverify.edge.workflow import Display, Engine, InvalidCard, RecordError, Verifier

log = logging.getLogger("fpverify.edge.station")

SOFTWARE_VERSION = "0.1.0"
NO_SHIFT = "no clerk signed in: open a shift at the station (finger or PIN)"


class Station:
    def __init__(self, cfg: EdgeConfig, display: Display | None = None, sensor: Any = "auto",
                 engine: Any = "auto", mqtt: bool = True, sync: bool = True) -> None:
        self.cfg = cfg
        signer = None
        if cfg.station.sign_results:
            if cfg.mqtt.key_file is None:
                raise ConfigError("station.sign_results needs mqtt.key_file (the device key)")
            from fpverify.edge.signing import ResultSigner, SigningError

            try:
                signer = ResultSigner.from_files(cfg.mqtt.key_file, cfg.station.device_id, cfg.mqtt.cert_file)
            except SigningError as exc:
                raise ConfigError(f"cannot sign results: {exc}") from exc
        key = parse_key(cfg.cache.key.read_bytes())
        self.store = Store.open(cfg.cache.path, key)  # CacheError: wrong key / damaged; nothing touched
        del key
        self.outbox = Outbox(self.store, signer=signer)
        # The matcher is a core dependency: a station that cannot load it does not start.
        self.engine = Engine.for_station(cfg.station) if engine == "auto" else engine
        if sensor == "auto":
            from fpverify.edge.sensor.driver import SensorDriver

            s = cfg.sensor
            sensor = SensorDriver(s.port, baud=s.baud, address=s.address, password=s.password, timeout_s=s.timeout_s)
        self.sensor = sensor
        # The workflow's view of the sensor: cancellable while waiting, tells the screen when the image comes.
        self.guard = GuardedSensor(sensor, on_reading=lambda: self.show(Prompt(Step.READING))) \
            if sensor is not None else None
        self.last_problem: str | None = None
        self.link = None
        self.sync = None
        if sync and cfg.registry.url:
            from fpverify.edge.sync import TemplateSync

            self.sync = TemplateSync(cfg.registry, cfg.station.device_id, self.store,
                                     cfg.registry.device_token.read_text())
        # Clerks' sign-in (edge/staff.py, edge/kiosk/shift.py): their own tables, their own feed.
        from fpverify.edge.kiosk.shift import Shift
        from fpverify.edge.staff import StaffStore, StaffSync

        self.staff = StaffStore(self.store)
        self.shift = Shift(cfg.shift, self.staff)
        self.staff_sync = StaffSync(cfg.registry, cfg.station.device_id, cfg.station.site_id, self.staff,
                                    cfg.registry.device_token.read_text(), interval_s=cfg.shift.staff_sync_s,
                                    on_applied=self.shift.roster_changed) if self.sync else None
        if mqtt and cfg.mqtt.host:
            from fpverify.edge.mqtt_link import MqttLink

            password = cfg.mqtt.password.read_text() if cfg.mqtt.password.configured() else None
            self.link = MqttLink(cfg.mqtt, cfg.station.device_id, self.outbox, password=password,
                                 on_templates_changed=self._registry_changed if self.sync else None,
                                 cache_version=self.store.feed_version, software_version=SOFTWARE_VERSION)
        self.verifier = Verifier(cfg.station, self.store, self.outbox, self.engine, sensor=self.guard, display=display,
                                 on_recorded=self._recorded)

    def _registry_changed(self, note) -> None:
        """TemplatesChanged: the patients' feed, and the staff list (a freeze notifies too)."""
        self.sync.notify(note)
        if self.staff_sync:
            self.staff_sync.notify(note)

    def _recorded(self, result: VerificationResult) -> None:
        self.shift.touch()
        if self.link:
            self.link.notify()

    def start(self) -> None:
        pruned = self.outbox.prune_history(self.cfg.station.history_days)
        if pruned:
            log.info("forgot %d acknowledged result ids older than %d days", pruned, self.cfg.station.history_days)
        if self.sensor is not None and hasattr(self.sensor, "open"):
            try:
                self.sensor.open()
            except Exception as exc:  # the workflow records sensor_error and reconnects per card
                log.error("sensor not ready: %s", exc)
        if self.link:
            self.link.start()
        if self.sync:
            self.sync.start()
        if self.staff_sync:
            self.staff_sync.start()

    def stop(self) -> None:
        self.shift.close()
        if self.staff_sync:
            self.staff_sync.stop()
        if self.sync:
            self.sync.stop()
        if self.link:
            self.link.stop()
        if self.sensor is not None and hasattr(self.sensor, "close"):
            with contextlib.suppress(Exception):
                self.sensor.close()
        self.store.close()

    def __enter__(self) -> Station:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def handle_card(self, text: str, operator_id: str | None = None, purpose: str | None = None,
                    cancellable: bool = False) -> VerificationResult | None:
        """One card from the reader. Unreadable input is shown and ignored (nothing to record).
        `purpose` overrides station.purpose for this check (the HIS names the desk's step).
        With `cancellable`, a cancel (self.guard.cancel) raises desk.Cancelled; else it is shown."""
        self.last_problem = None
        try:
            card = parse_card(text).card_number
        except BadRead as exc:
            self.show(Prompt(Step.CARD_NOT_READ, reasons=(exc.reason,), detail=str(exc)))
            return None
        # With a shift open its clerk is the operator (authenticated), never a typed id.
        shift_operator = self.shift.operator()
        if shift_operator is None and self.shift.required:
            log.warning("card refused: no clerk has signed in at this desk")
            self._problem(NO_SHIFT)
            return None
        operator_id = shift_operator or operator_id
        self.show(Prompt(Step.CARD_READ, fingers=self._fingers(card)))
        default = self.verifier.cfg
        if purpose is not None and purpose != default.purpose:
            self.verifier.cfg = default.model_copy(update={"purpose": Purpose(purpose)})
        try:
            return self.verifier.verify(card, operator_id=operator_id)
        except InvalidCard as exc:
            self.show(Prompt(Step.CARD_NOT_READ, reasons=("unreadable",), detail=str(exc)))
        except RecordError as exc:
            log.error("%s", exc)
            self._problem(str(exc))
        except RuntimeError as exc:  # no sensor or matcher given: nothing was decided, nothing is recorded
            log.error("%s", exc)
            self._problem(str(exc))
        except Cancelled:
            if cancellable:
                raise
            self.show(Prompt(Step.CANCELLED))
        finally:
            self.verifier.cfg = default
        return None

    def _fingers(self, card: str) -> tuple[int, ...]:
        """The enrolled fingers to ask for: the holder's first, then the delegates'."""
        templates = self.store.templates_for(card)
        ranked = sorted(templates, key=lambda t: (t.role != HolderRole.HOLDER, t.finger))
        return tuple(dict.fromkeys(t.finger for t in ranked if t.finger))

    def _problem(self, detail: str) -> None:
        self.last_problem = detail
        self.show(Prompt(Step.STATION_PROBLEM, detail=detail))

    def show(self, prompt: Prompt) -> None:
        if self.verifier.display:
            self.verifier.display.show(prompt)

    def status(self) -> tuple[bool | None, int]:
        """(connected to the broker, or None without MQTT; results waiting in the outbox)."""
        online = self.link.connected.is_set() if self.link else None
        return online, self.outbox.count()

    def run(self, cards: Iterable[str]) -> None:
        for text in cards:
            if text.strip():
                self.handle_card(text)


def stdin_cards(stream: IO[str]) -> Iterator[str]:
    for line in stream:
        yield line.strip()


class CardSocket:
    """A unix socket for the card-reader service: lines in, one JSON result line out per card."""

    def __init__(self, path: str | os.PathLike, handle: Callable[[str], VerificationResult | None]) -> None:
        self.path = Path(path)
        self.handle = handle
        self._lock = threading.Lock()  # one desk, one finger at a time
        self._stop = threading.Event()
        self.sock: socket.socket | None = None

    def serve_forever(self) -> None:
        # Bound and listening under a temporary name, then renamed into place: the path appears only
        # when a connect succeeds (a reader service racing the start got "connection refused").
        part = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(part))
        os.chmod(part, 0o660)
        self.sock.listen(4)
        os.replace(part, self.path)  # also takes the place of a socket left by an earlier run
        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        # Separate reader and writer: a text file opened "rw" drops its read-ahead on every write.
        with conn, conn.makefile("r", encoding="utf-8", errors="replace") as rf, \
                conn.makefile("w", encoding="utf-8") as wf:
            for line in rf:
                if not line.strip():
                    continue
                with self._lock:
                    result = self.handle(line)
                wf.write((result.model_dump_json() if result else '{"error": "card not read"}') + "\n")
                wf.flush()

    def stop(self) -> None:
        self._stop.set()
        if self.sock:
            self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
