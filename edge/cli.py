"""`fpverify edge ...` (the station) and `fpverify bench station`."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import typer

from fpverify.edge.presses import ENROLL_PRESSES, MAX_PRESSES, MIN_PRESSES

DEFAULT_CONFIG = os.environ.get("FPVERIFY_EDGE_CONFIG", "/etc/fpverify/edge.toml")

edge_app = typer.Typer(no_args_is_help=True, help="The verification station (desk, pharmacy, ward).")

ConfigOpt = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Station TOML (see firmware_cfg/edge.example.toml)")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _load(config: str, files: bool = True):
    from fpverify.edge.config import ConfigError, check_files, load_config

    try:
        cfg = load_config(config)
        if files:  # the certificates and keys it names (not needed to wipe the store)
            check_files(cfg)
    except ConfigError as exc:
        _fail(str(exc))
    return cfg


def _open_station(cfg, **kwargs):
    from fpverify.edge.cache import CacheError
    from fpverify.edge.config import ConfigError
    from fpverify.edge.station import Station

    try:
        return Station(cfg, **kwargs)
    except (CacheError, ConfigError) as exc:
        _fail(str(exc))


def _sigterm_exits() -> None:
    def handler(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


@edge_app.command("run")
def run(config: str = ConfigOpt, verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Run the station: cards from the kiosk page and the HIS (config sections kiosk, his), else from the card
    socket (station.card_socket) or stdin, one per line."""
    from fpverify.edge.station import CardSocket, stdin_cards
    from fpverify.edge.workflow import ConsoleDisplay

    _setup_logging(verbose)
    cfg = _load(config)
    kiosk = None
    display = ConsoleDisplay()
    if cfg.kiosk.enabled:
        from fpverify.edge.kiosk.display import KioskDisplay
        from fpverify.edge.prompts import Displays

        kiosk = KioskDisplay(hold_s=cfg.kiosk.outcome_hold_s)
        display = Displays(kiosk, display)
    station = _open_station(cfg, display=display)
    _sigterm_exits()
    station.start()
    service = None
    try:
        if kiosk is not None:
            service = _start_kiosk(station, kiosk)
            signal.pause()  # the page, the HIS API and the MQTT link run in their threads until SIGTERM
        elif cfg.station.card_socket:
            sock = CardSocket(cfg.station.card_socket, station.handle_card)
            logging.getLogger("fpverify.edge.station").info("waiting for cards on %s", cfg.station.card_socket)
            try:
                sock.serve_forever()
            finally:
                sock.stop()
        else:
            station.run(stdin_cards(sys.stdin))
            # stdin closed (a one-shot pipe): give the link a moment to hand queued results over
            if station.link:
                station.link.wait_drained(10)
    except KeyboardInterrupt:
        pass
    finally:
        if service is not None:
            service.stop()
        station.stop()


def _start_kiosk(station, kiosk):
    from fpverify.edge.config import ConfigError
    from fpverify.edge.kiosk.server import KioskService

    try:
        return KioskService(station, kiosk).start()
    except (ConfigError, RuntimeError) as exc:  # run()'s finally stops the station
        _fail(str(exc))


@edge_app.command("his-openapi")
def his_openapi(out: Path = typer.Option(Path("docs/his/openapi.json"), "--out", help="File to write")) -> None:
    """Export the OpenAPI description of the station's HIS API (docs/his/openapi.json)."""
    from fpverify.edge.kiosk.his import openapi_document

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(openapi_document() + "\n", encoding="utf-8")
    typer.echo(str(out))


@edge_app.command("verify")
def verify(card: str = typer.Option(..., "--card", help="Card number"), config: str = ConfigOpt,
           operator: str = typer.Option(None, "--operator", help="Operator id recorded with the result"),
           wait_s: float = typer.Option(10.0, help="Seconds to wait for the result to reach the broker")) -> None:
    """One verification (capture from the sensor), printed as JSON; the result stays queued if offline."""
    from fpverify.edge.kiosk.cards import BadRead, parse_card
    from fpverify.edge.workflow import MESSAGES, ConsoleDisplay, InvalidCard

    _setup_logging(False)
    try:
        card = parse_card(card).card_number  # the formats every card input accepts (docs/station.md)
    except BadRead as exc:
        _fail(f"card not read: {exc}")
    cfg = _load(config)
    station = _open_station(cfg, display=ConsoleDisplay(), sync=False)
    station.start()
    try:
        result = station.verifier.verify(card, operator_id=operator)
        delivered = station.link.wait_drained(wait_s) if station.link else False
    except (InvalidCard, RuntimeError) as exc:
        _fail(str(exc))
    finally:
        station.stop()
    typer.echo(json.dumps({"result": json.loads(result.model_dump_json()), "message": MESSAGES[result.outcome],
                           "delivered": delivered}, ensure_ascii=False))


@edge_app.command("enroll")
def enroll(card: str = typer.Option(..., "--card"), config: str = ConfigOpt,
           operator: str = typer.Option(..., "--operator", help="Operator user name at the registry"),
           fingers: str = typer.Option("2,7", help="ISO finger positions to enroll, e.g. 2,7 (right/left index)"),
           impressions: int = typer.Option(ENROLL_PRESSES, min=MIN_PRESSES, max=MAX_PRESSES),
           delegate: str = typer.Option(None, "--delegate", help="Enroll an authorised delegate with this id"),
           consent: bool = typer.Option(False, "--consent-given",
                                        help="The holder gave separate consent to biometric processing")) -> None:
    """Enrollment mode: operator login, recorded consent, 5 impressions per finger (at least 3), upload."""
    from fpverify.edge.enroll import Enroller, EnrollError
    from fpverify.edge.workflow import ConsoleDisplay

    _setup_logging(False)
    cfg = _load(config)
    if not consent:
        consent = typer.confirm("Has the card holder given separate consent to fingerprint processing (PIPL)?")
    if not consent:
        _fail("no consent: nothing captured, nothing uploaded", code=1)
    password = typer.prompt(f"Registry password for {operator}", hide_input=True)
    station = _open_station(cfg, display=ConsoleDisplay(), mqtt=False, sync=False)
    station.start()
    try:
        enroller = Enroller(cfg, station.engine, station.sensor, display=station.verifier.display)
        enroller.login(operator, password)
        answer = enroller.enroll(card, [int(f) for f in fingers.split(",")], impressions=impressions,
                                 delegate_id=delegate)
    except EnrollError as exc:
        _fail(str(exc), code=1)
    finally:
        station.stop()
    typer.echo(json.dumps(answer))


@edge_app.command("enroll-staff")
def enroll_staff(user_id: int = typer.Option(..., "--user-id", help="The clerk's account id at the registry"),
                 site: str = typer.Option(..., "--site", help="The site whose stations the clerk signs in at"),
                 config: str = ConfigOpt,
                 admin: str = typer.Option(..., "--admin", help="Sysadmin user name at the registry"),
                 fingers: str = typer.Option("2,7", help="ISO finger positions, e.g. 2,7 (right/left index)"),
                 impressions: int = typer.Option(ENROLL_PRESSES, min=MIN_PRESSES, max=MAX_PRESSES),
                 with_pin: bool = typer.Option(True, "--pin/--no-pin", help="Let the clerk choose a PIN fallback")) -> None:
    """A clerk's sign-in: the clerk's own fingers (and PIN), filed for a supervisor's approval."""
    from fpverify.edge.enroll import Enroller, EnrollError
    from fpverify.edge.workflow import ConsoleDisplay

    _setup_logging(False)
    cfg = _load(config)
    password = typer.prompt(f"Registry password for {admin}", hide_input=True)
    pin = typer.prompt("The clerk's PIN (6-12 digits, typed by the clerk)", hide_input=True,
                       confirmation_prompt=True) if with_pin else None
    station = _open_station(cfg, display=ConsoleDisplay(), mqtt=False, sync=False)
    station.start()
    try:
        enroller = Enroller(cfg, station.engine, station.sensor, display=station.verifier.display)
        enroller.login(admin, password)
        answer = enroller.enroll_staff(user_id, site, [int(f) for f in fingers.split(",")],
                                       impressions=impressions, pin=pin)
    except (EnrollError, ValueError) as exc:
        _fail(str(exc), code=1)
    finally:
        station.stop()
    typer.echo(json.dumps(answer, ensure_ascii=False))


@edge_app.command("status")
def status(config: str = ConfigOpt) -> None:
    """What is in the station's store (opens it read-only in effect: checks, counts, versions)."""
    from fpverify.edge.cache import CacheError, Store, parse_key
    from fpverify.edge.config import ConfigError

    cfg = _load(config)
    try:
        with Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes()), create=False) as store:
            oldest = store.query("SELECT min(created_at) FROM outbox")[0][0]
            info = {"device_id": cfg.station.device_id, "site_id": cfg.station.site_id,
                    "cache": str(cfg.cache.path), "schema_version": store.schema_version(),
                    "feed_version": store.feed_version(), **store.counts(), "oldest_pending": oldest,
                    "mqtt": f"{cfg.mqtt.host}:{cfg.mqtt.port} (MQTT {cfg.mqtt.version})" if cfg.mqtt.host else None,
                    "registry": cfg.registry.url}
    except (CacheError, ConfigError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(info, indent=2))


@edge_app.command("wipe")
def wipe(config: str = ConfigOpt, yes: bool = typer.Option(False, "--yes", help="Do not ask")) -> None:
    """Destroy the station's store (templates and any unsent results). No key needed."""
    from fpverify.edge.cache import wipe as wipe_store

    cfg = _load(config, files=False)
    if not yes and not typer.confirm(f"Overwrite and delete {cfg.cache.path} (unsent results are lost)?"):
        raise typer.Exit(1)
    wiped = wipe_store(cfg.cache.path)
    typer.echo(json.dumps({"wiped": [str(p) for p in wiped]}))


@edge_app.command("keygen")
def keygen(out: Path = typer.Option(..., "--out", help="Key file to create (mode 600); refuses to overwrite")) -> None:
    """Create a random 32-byte cache key (hex). Or: systemd-creds encrypt it for LoadCredentialEncrypted=."""
    from fpverify.edge.cache import new_key

    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _fail(f"{out} exists; refusing to overwrite a key (its cache would become unreadable)")
    with os.fdopen(fd, "w") as f:
        f.write(new_key().hex() + "\n")
    typer.echo(str(out))


@edge_app.command("wire-schemas")
def wire_schemas(out: Path = typer.Option(Path("docs/wire"), "--out", help="Folder for the JSON Schemas")) -> None:
    """Export the wire contract (edge/wire.py) as JSON Schema files (docs/wire/*.json)."""
    from fpverify.edge.wire import write_schemas

    for name in write_schemas(out):
        typer.echo(str(out / name))


def bench_station(out: Path = typer.Option(..., "--out", help="Folder for results.json and report.md"),
                  probes: int = typer.Option(30, help="Verifications to time"),
                  templates_per_card: int = typer.Option(6, help="Enrolled templates of the card holder"),
                  packet_size: int = typer.Option(128, help="Sensor packet size (32/64/128/256)")) -> None:
    """Median time from image in memory to result durable in the outbox, vs the UART transfer."""
    from fpverify.edge.bench import run_station_bench

    res = run_station_bench(out, probes=probes, templates_per_card=templates_per_card, packet_size=packet_size)
    typer.echo(json.dumps(res, indent=2))


def bench_kiosk(out: Path = typer.Option(..., "--out", help="Folder for results.json and report.md"),
                runs: int = typer.Option(10, help="Checks to time (after one warm-up)"),
                baud: int = typer.Option(115200, help="Simulated sensor's baud rate")) -> None:
    """Card scan to outcome on the kiosk page: a real station on the simulated sensor, in Chromium."""
    from fpverify.edge.kiosk.bench import run_kiosk_bench

    typer.echo(json.dumps(run_kiosk_bench(out, runs=runs, baud=baud), indent=2))


def register(app: typer.Typer, bench: typer.Typer) -> None:
    app.add_typer(edge_app, name="edge")
    bench.command("station")(bench_station)
    bench.command("kiosk")(bench_kiosk)
