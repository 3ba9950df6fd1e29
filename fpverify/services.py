"""Private services for tests, benchmarks and the demo: the one place that starts them.

PrivateMosquitto, PrivatePostgres and PrivateRabbitMQ run the installed binaries on free ports in a
folder of their own (never a system service); EmbeddedBroker is amqtt in a thread (MQTT 3.1.1 only) for machines
without Mosquitto; ServedApp runs an ASGI app under uvicorn in a thread. PostgreSQL runs as
`postgres` when we are root. The package must not import tests, so tests import from here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from fpverify.edge.kiosk.server import ThreadedServer

# The broker must not drop QoS 1 messages for a slow or restarting registry: no queue limit.
BROKER_CONF = "max_queued_messages 0\nmax_inflight_messages 0\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """Whether `port` on 127.0.0.1 can be listened on now."""
    try:
        with socket.create_server(("127.0.0.1", port)):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def find_binary(name: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        if (Path(d) / name).exists():
            return str(Path(d) / name)
    return None


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Terminate, then kill what does not exit within `timeout`."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_process(proc: subprocess.Popen | None) -> None:
    """A crash: SIGKILL, nothing flushed beyond what the process already wrote."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


class PrivateMosquitto:
    """A private broker. `conf` is appended to a default listener block, or replaces it with
    replace_conf (then `{port}` in it is the broker's port)."""

    version = "5"
    name = "Mosquitto (private, MQTT 5)"
    host = "127.0.0.1"

    def __init__(self, workdir: Path, conf: str = BROKER_CONF, port: int | None = None, replace_conf: bool = False):
        self.binary = find_binary("mosquitto", ("/usr/sbin",))
        if not self.binary:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        base = f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        text = conf if replace_conf else base + conf
        self.conf_path = self.workdir / "mosquitto.conf"
        self.conf_path.write_text(text.replace("{port}", str(self.port))
                                  + f"\npersistence false\nlog_dest file {self.workdir / 'mosquitto.log'}\n")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> PrivateMosquitto:
        stderr = self.workdir / "mosquitto.stderr"
        with stderr.open("wb") as err:
            # a session of its own: Ctrl-C at the terminal reaches the whole foreground process group, and
            # the broker must outlive the registry and stations its owner stops first (else their last
            # moments log a lost broker); the owner stops it
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                wait_port(self.port, timeout=0.2)
                return self
            except TimeoutError:
                continue
        self.stop()
        said = (stderr.read_text(errors="replace") + self.log())[-2000:]
        raise RuntimeError(f"mosquitto did not start on port {self.port}: {said.strip() or 'no output'}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        kill_process(self.proc)
        self.proc = None

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


class EmbeddedBroker:
    """amqtt in a thread of its own (MQTT 3.1.1 only), for machines without Mosquitto."""

    version = "3.1.1"
    name = "embedded amqtt broker (MQTT 3.1.1)"
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = free_port()
        self.loop: Any = None
        self.broker: Any = None
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


def start_broker(kind: str, workdir: Path) -> PrivateMosquitto | EmbeddedBroker:
    """A started broker: "mosquitto", "amqtt", or "auto" (Mosquitto where installed, else amqtt)."""
    if kind not in ("auto", "mosquitto", "amqtt"):
        raise ValueError(f"unknown broker {kind!r}: auto, mosquitto or amqtt")
    if kind in ("auto", "mosquitto"):
        try:
            return PrivateMosquitto(workdir / "mosquitto").start()
        except RuntimeError:
            if kind == "mosquitto":
                raise
    return EmbeddedBroker().start()


class ServedApp(ThreadedServer):
    """An ASGI app under uvicorn in a thread on 127.0.0.1 (a free port unless given); `uvicorn_options`
    go to uvicorn.Config (ssl_certfile, lifespan, ...)."""

    def __init__(self, app: Any, port: int | None = None, **uvicorn_options: Any) -> None:
        port = port or free_port()
        super().__init__(app, "127.0.0.1", port, f"uvicorn-{port}", **uvicorn_options)

    def start(self, timeout: float = 30.0) -> ServedApp:
        return super().start(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)


class PrivatePostgres:
    """A private PostgreSQL cluster (trust auth on 127.0.0.1). Durable commits by default (a
    benchmark measures the real cost); durable=False trades them for speed (tests)."""

    user = "postgres"

    def __init__(self, workdir: Path, port: int | None = None, durable: bool = True):
        dirs = tuple(sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True))
        pg_ctl = find_binary("pg_ctl", dirs)
        if not pg_ctl:
            raise RuntimeError("PostgreSQL server binaries are not installed (apt-get install postgresql)")
        # pg_ctl and initdb on PATH may be Debian wrappers: use the real binaries side by side.
        self.pg_ctl = os.path.realpath(pg_ctl)
        self.initdb = str(Path(self.pg_ctl).parent / "initdb")
        self.workdir = Path(workdir)
        self.datadir = self.workdir / "data"
        self.sockdir = self.workdir / "sock"
        self.port = port or free_port()
        self.durable = durable
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root and no 'postgres' user to run PostgreSQL as") from exc
            self.run_as = ["runuser", "-u", "postgres", "--"]

    def _cmd(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, text=True)

    def start(self) -> PrivatePostgres:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(exist_ok=True)
        if self.run_as:
            shutil.chown(self.workdir, "postgres")
            shutil.chown(self.sockdir, "postgres")
            for parent in self.workdir.parents:  # the folder's parents must be traversable by postgres
                if str(parent) in ("/", "/tmp"):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
        opts = f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        try:
            if not self.datadir.exists():
                self._cmd(self.initdb, "-D", str(self.datadir), "-U", self.user, "-A", "trust", "-E", "UTF8",
                          "--no-sync")
            self._cmd(self.pg_ctl, "-D", str(self.datadir), "-o", opts, "-l", str(self.workdir / "pg.log"),
                      "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            log = (self.workdir / "pg.log").read_text(errors="replace") if (self.workdir / "pg.log").exists() else ""
            raise RuntimeError(f"postgres did not start: {exc.stderr}\n{log[-2000:]}") from exc
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._cmd(self.pg_ctl, "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def url(self, dbname: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class PrivateRabbitMQ:
    """A private RabbitMQ node (the installed rabbitmq-server, its own node name, ports, Erlang
    cookie and data folder; the MQTT plugin on). Stations speak MQTT 3.1.1 to `mqtt_port`; the
    registry's ingest workers consume a quorum queue over AMQP at `amqp_url`. The data folder
    survives `stop`/`start`, so `restart` keeps queues and messages (a broker restart)."""

    version = "3.1.1"  # RabbitMQ 3.10's MQTT plugin: MQTT 3.1 / 3.1.1
    name = "RabbitMQ (private, MQTT plugin + quorum queue)"
    host = "127.0.0.1"

    def __init__(self, workdir: Path):
        self.server = find_binary("rabbitmq-server", ("/usr/lib/rabbitmq/bin", "/usr/sbin"))
        if not self.server:
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        real = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # Debian's /usr/sbin one re-runs itself as `rabbitmq`
        self.server = str(real) if real.exists() else self.server
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()  # MQTT (what stations and the notifier use)
        self.mqtt_port = self.port
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.node = f"fpverify-{uuid.uuid4().hex[:8]}@localhost"
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt_port}\n"
            "mqtt.allow_anonymous = true\nmqtt.default_user = guest\nmqtt.default_pass = guest\n"
            "loopback_users = none\n")
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        cookie = self.workdir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(uuid.uuid4().hex)
            cookie.chmod(0o400)
        self.env = dict(os.environ, HOME=str(self.workdir), RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_PORT=str(self.amqp_port), RABBITMQ_DIST_PORT=str(self.dist_port),
                        RABBITMQ_MNESIA_BASE=str(self.workdir / "mnesia"), RABBITMQ_LOG_BASE=str(self.workdir / "log"),
                        RABBITMQ_CONFIG_FILE=str(self.workdir / "rabbitmq.conf"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=str(self.workdir / "enabled_plugins"),
                        RABBITMQ_PLUGINS_EXPAND_DIR=str(self.workdir / "plugins"),
                        RABBITMQ_ADVANCED_CONFIG_FILE=str(self.workdir / "advanced.config"),
                        RABBITMQ_PID_FILE=str(self.workdir / "rabbit.pid"),
                        ERL_CRASH_DUMP=str(self.workdir / "erl_crash.dump"),  # never into the caller's folder
                        RUNNING_UNDER_SYSTEMD="1")  # exec the VM itself: our pid is the broker's
        self.proc: subprocess.Popen | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    def start(self, timeout: float = 120.0) -> PrivateRabbitMQ:
        out = self.workdir / "rabbitmq.out"
        with out.open("ab") as f:
            self.proc = subprocess.Popen([self.server], env=self.env, cwd=self.workdir, stdout=f,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:  # the MQTT listener opens last, once the broker and the plugin are up
                wait_port(self.mqtt_port, timeout=0.5)
                wait_port(self.amqp_port, timeout=5)
                return self
            except TimeoutError:
                continue
        self.kill()
        raise RuntimeError(f"rabbitmq did not start: {out.read_text(errors='replace')[-2000:].strip()}")

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: the node stops its apps and flushes)."""
        stop_process(self.proc, timeout=60)
        self.proc = None

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed beyond what the broker already synced."""
        kill_process(self.proc)
        self.proc = None

    def restart(self, crash: bool = False) -> PrivateRabbitMQ:
        self.kill() if crash else self.stop()
        return self.start()
