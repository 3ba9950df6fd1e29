"""Private PostgreSQL and Mosquitto for `fpverify bench ingest`, and the process helpers that
tests/services.py builds on (the package must not import tests). Runs PostgreSQL as `postgres` when we are root."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

# The broker must not drop QoS 1 messages for a slow or restarting registry: no queue limit.
BROKER_CONF = "max_queued_messages 0\nmax_inflight_messages 0\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class PrivateMosquitto:
    def __init__(self, workdir: Path, conf: str = BROKER_CONF):
        self.binary = find_binary("mosquitto", ("/usr/sbin",))
        if not self.binary:
            raise RuntimeError("mosquitto is not installed")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (self.workdir / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n{conf}"
            f"log_dest file {self.workdir / 'mosquitto.log'}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrivateMosquitto:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.workdir / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        stop_process(self.proc)


class PrivatePostgres:
    def __init__(self, workdir: Path):
        dirs = tuple(sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True))
        pg_ctl = find_binary("pg_ctl", dirs)
        if not pg_ctl:
            raise RuntimeError("PostgreSQL server binaries are not installed")
        self.pg_ctl = os.path.realpath(pg_ctl)
        self.initdb = str(Path(self.pg_ctl).parent / "initdb")
        self.workdir = Path(workdir)
        self.port = free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # KeyError: no user to run as
            self.run_as = ["runuser", "-u", "postgres", "--"]

    def _cmd(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, text=True)

    def start(self) -> PrivatePostgres:
        data, sock = self.workdir / "data", self.workdir / "sock"
        self.workdir.mkdir(parents=True, exist_ok=True)
        sock.mkdir(exist_ok=True)
        if self.run_as:
            shutil.chown(self.workdir, "postgres")
            shutil.chown(sock, "postgres")
            for parent in self.workdir.parents:
                if str(parent) in ("/", "/tmp"):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
        self._cmd(self.initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        # Durable commits (the default) unlike the test cluster: the bench measures the real cost.
        opts = f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1"
        self._cmd(self.pg_ctl, "-D", str(data), "-o", opts, "-l", str(self.workdir / "pg.log"), "-w", "-t", "60",
                  "start")
        return self

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if (self.workdir / "data" / "postmaster.pid").exists():
            try:
                self._cmd(self.pg_ctl, "-D", str(self.workdir / "data"), "-m", "fast", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
