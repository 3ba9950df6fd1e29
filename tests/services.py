"""Private Mosquitto and PostgreSQL instances for tests, started from the installed binaries.

Each instance gets a free port and its own temporary directory, so tests never touch a system
service and may use their own configs (TLS, ACLs).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from fpverify.services import find_binary, free_port, stop_process, wait_port

__all__ = ["Mosquitto", "Postgres", "find_binary", "free_port", "wait_port"]


class Mosquitto:
    """A private broker. `conf` is appended to a default listener block (or replaces it)."""

    def __init__(self, workdir: Path, conf: str = "", port: int | None = None, replace_conf: bool = False):
        self.binary = find_binary("mosquitto", ("/usr/sbin",))
        if self.binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        base = f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        text = conf if replace_conf else base + conf
        self.conf_path = self.workdir / "mosquitto.conf"
        self.conf_path.write_text(
            text.replace("{port}", str(self.port)) + f"\npersistence false\nlog_dest file {self.workdir / 'mosquitto.log'}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log()[-2000:]}") from None
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


PG_DIRS = tuple(sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)) if Path(
    "/usr/lib/postgresql"
).exists() else ()


class Postgres:
    """A private PostgreSQL cluster (trust auth on 127.0.0.1). Runs as `postgres` when we are root."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.initdb = find_binary("initdb", PG_DIRS)
        self.pg_ctl = find_binary("pg_ctl", PG_DIRS)
        if self.initdb is None or self.pg_ctl is None:
            raise RuntimeError("PostgreSQL server binaries are not installed (apt-get install postgresql)")
        # initdb from PATH may be a Debian wrapper; prefer the real binary next to pg_ctl.
        real = Path(os.path.realpath(self.pg_ctl)).parent / "initdb"
        if real.exists():
            self.initdb = str(real)
            self.pg_ctl = str(Path(os.path.realpath(self.pg_ctl)))
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.datadir = self.workdir / "data"
        self.sockdir = self.workdir / "sock"
        self.user = "postgres"
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root and no 'postgres' user to run PostgreSQL as") from exc
            self._run_as = ["runuser", "-u", "postgres", "--"]

    def _cmd(self, *args: str) -> None:
        subprocess.run([*self._run_as, *args], check=True, capture_output=True, text=True)

    def start(self) -> Postgres:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(exist_ok=True)
        if self._run_as:
            shutil.chown(self.workdir, "postgres")
            shutil.chown(self.sockdir, "postgres")
            # the temp dir's parents must be traversable by postgres
            for parent in self.workdir.parents:
                if str(parent) in ("/", "/tmp"):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
        if not self.datadir.exists():
            self._cmd(self.initdb, "-D", str(self.datadir), "-U", self.user, "-A", "trust", "-E", "UTF8",
                      "--no-sync")
        opts = (f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            self._cmd(self.pg_ctl, "-D", str(self.datadir), "-o", opts, "-l", str(self.workdir / "pg.log"),
                      "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            log = (self.workdir / "pg.log").read_text(errors="replace") if (self.workdir / "pg.log").exists() else ""
            raise RuntimeError(f"postgres did not start: {exc.stderr}\n{log[-2000:]}") from exc
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.datadir / "postmaster.pid").exists():
            try:
                self._cmd(self.pg_ctl, "-D", str(self.datadir), "-m", mode, "-w", "stop")
            except subprocess.CalledProcessError:
                pass

    def url(self, dbname: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
