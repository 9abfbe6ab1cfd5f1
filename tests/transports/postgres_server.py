"""A real PostgreSQL server on loopback for the tests (and the benchmark), started here.

:func:`postgres_server` runs ``initdb`` into a temporary folder, starts ``postgres`` with
``pg_ctl`` on 127.0.0.1 at a free port (its unix socket in the same folder, so nothing
outside it is touched), trusts every connection from loopback, creates a database, and
stops the server and removes the folder after. The binaries are looked up on PATH, then
in ``/usr/lib/postgresql/*/bin``; when none is found and we are root with apt-get,
``apt-get install -y postgresql`` is run (announced on stderr). ``initdb`` refuses to
run as root, so as root the server runs as the ``postgres`` user (created when missing)
and the folder is made its own.

Nothing here skips: a server that cannot be started raises :class:`ServerError` with
what was tried and the server's log, so a test using it fails and says why.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.transports._install import ServerError, apt_install, free_port, log_tail, start_on_a_free_port

__all__ = ["PostgresServer", "ServerError", "persistent_server", "postgres_server"]

SERVER_USER = "postgres"
#: durability off: a test server's data is thrown away, and fsyncs would dominate
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def _say(message: str) -> None:
    print(f"[postgres_server] {message}", file=sys.stderr, flush=True)


def find_bin_dir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``; installs them with
    apt-get (loudly) when they are missing and we may."""
    for attempt in range(2):
        on_path = shutil.which("initdb")
        candidates = ([Path(os.path.realpath(on_path)).parent] if on_path else []) + [
            Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
        for folder in candidates:
            if all((folder / b).exists() for b in ("initdb", "pg_ctl", "postgres")):
                return folder
        if attempt == 0 and apt_install("postgresql", "postgres_server"):
            continue
        break
    raise ServerError("PostgreSQL's initdb, pg_ctl and postgres were found neither on PATH nor in "
                      "/usr/lib/postgresql/*/bin; install PostgreSQL (Debian: apt-get install postgresql)")


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as: ourselves, unless we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        _say(f"running as root: creating the system user {SERVER_USER!r} to run the server")
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
                       check=False, capture_output=True)
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise ServerError(f"running as root, and the user {SERVER_USER!r} to run PostgreSQL as (initdb "
                              "refuses root) does not exist and could not be created with useradd") from None


@dataclass
class PostgresServer:
    """A running server: connect as ``user`` to ``dbname`` at ``host``:``port``."""

    bin_dir: Path
    folder: Path
    port: int
    user: str = "onepass"
    dbname: str = "onepass"
    host: str = "127.0.0.1"
    run_as: pwd.struct_passwd | None = None
    #: more ``name=value`` server settings (``shared_buffers=1GB``)
    settings: tuple[str, ...] = ()
    #: where the unix socket goes (default: ``folder``; a socket's path is short)
    socket_dir: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    @property
    def uri(self) -> str:
        """``postgresql://USER@HOST:PORT/DB``, what onepass reads."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        kw: dict = {}
        if self.run_as is not None:
            kw = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.folder)}
        done = subprocess.run([str(self.bin_dir / args[0]), *args[1:]], capture_output=True, text=True,
                              env=env, cwd=self.folder, **kw)
        if check and done.returncode != 0:
            raise ServerError(f"{' '.join(args)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
                              f"{self.log_tail()}")
        return done

    def log_tail(self, n: int = 30) -> str:
        return log_tail(self.log_file, n)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", self.user, "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync")

    def start(self) -> None:
        """Start the server (again, after :meth:`stop`: same data, same port)."""
        options = f"-p {self.port} -k {self.socket_dir or self.folder} -c listen_addresses=127.0.0.1 " + " ".join(
            f"-c {s}" for s in (*FAST_SETTINGS, *self.settings))
        self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
                  "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode="immediate"`` is a crash (no shutdown checkpoint)."""
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60")

    @property
    def is_running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def connect(self, dbname: str | None = None, **kw):
        """A psycopg connection to the database (autocommit)."""
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=dbname or self.dbname,
                               autocommit=True, **kw)

    def psql(self, sql: str) -> None:
        """Run ``sql`` (several statements allowed)."""
        with self.connect() as conn:
            conn.execute(sql)


def _own(folder: Path, run_as: pwd.struct_passwd | None) -> None:
    if run_as is not None:
        os.chown(folder, run_as.pw_uid, run_as.pw_gid)
    os.chmod(folder, 0o700)


@contextlib.contextmanager
def persistent_server(folder: str | os.PathLike[str], dbname: str = "onepass",
                      settings: tuple[str, ...] = ()) -> Iterator[PostgresServer]:
    """A server on 127.0.0.1 whose data stays in ``folder`` (made by the first use), for
    the block; stopped after, its data kept (the benchmark's tables, loaded once)."""
    bin_dir = find_bin_dir()
    run_as = _server_user()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _own(folder, run_as)
    sockets = Path(tempfile.mkdtemp(prefix="onepass-pgs-"))
    _own(sockets, run_as)
    server = PostgresServer(bin_dir, folder, free_port(), dbname=dbname, run_as=run_as, settings=settings,
                            socket_dir=sockets)
    try:
        fresh = not (server.data_dir / "PG_VERSION").exists()
        if fresh:
            shutil.rmtree(server.data_dir, ignore_errors=True)
            server.init()
        elif server.is_running:  # left by a process that was killed
            server.stop("immediate")
        server.start()
        if fresh:
            with server.connect(dbname="postgres") as conn:
                conn.execute(f'CREATE DATABASE "{dbname}"')
        yield server
    finally:
        try:
            if server.is_running:
                server.stop()
        finally:
            shutil.rmtree(sockets, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(dbname: str = "onepass") -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the duration of the block, then gone."""
    bin_dir = find_bin_dir()
    run_as = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="onepass-pg-"))
    server = None
    try:
        _own(folder, run_as)

        def make(port: int, attempt: int) -> PostgresServer:
            made = PostgresServer(bin_dir, folder, port, dbname=dbname, run_as=run_as)
            if attempt == 0:  # one data folder, whichever port serves it
                made.init()
            return made

        server = start_on_a_free_port(make, _say)
        with server.connect(dbname="postgres") as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        yield server
    finally:
        try:
            if server is not None and server.is_running:
                server.stop("immediate")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
