"""A throwaway PostgreSQL cluster for the service tests (imported by ``tests/serve/conftest.py``).

- ``postgres_url`` (session): starts a private cluster from the system's PostgreSQL binaries
  (``/usr/lib/postgresql/*/bin``: ``initdb``, ``pg_ctl``) in a temporary folder, listening on a unix
  socket in that folder and on 127.0.0.1 at a free port, with ``fsync=off``; creates the database
  ``pixlearn_test`` and yields ``postgresql+psycopg://postgres@127.0.0.1:PORT/pixlearn_test``. The
  cluster is stopped (``pg_ctl stop -m immediate``) and its folder removed at the end of the session.
  Under pytest-xdist every worker starts its own cluster. PostgreSQL refuses to run as root, so as
  root the cluster runs as the ``postgres`` system user (``runuser``).
- ``postgres_db`` (function): a fresh, empty database on that cluster for one test; its URL.

Both skip, saying what is missing, without the server binaries (``make test`` installs them with
``scripts/install-system-deps.sh``; on Debian/Ubuntu ``apt-get install postgresql``) or psycopg
(``pip install 'pixlearn[postgres]'``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["postgres_url", "postgres_db", "find_postgres_bin"]

DATABASE = "pixlearn_test"
_START_TRIES = 3  # another process may take the free port between choosing it and the server binding it


def find_postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl, else the folder of ``pg_ctl`` on PATH."""
    def version(path: str) -> tuple[int, ...]:
        parts = Path(path).parent.name.split(".")
        return tuple(int(p) for p in parts if p.isdigit())

    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True):
        folder = Path(initdb).parent
        if (folder / "pg_ctl").is_file():
            return folder
    on_path = shutil.which("pg_ctl")
    if on_path and (Path(on_path).parent / "initdb").is_file():
        return Path(on_path).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Cluster:
    """initdb + pg_ctl on a temporary folder, as the ``postgres`` user when this process is root."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.prefix: list[str] = []
        root_user = os.geteuid() == 0
        # /tmp: short (a unix socket path must stay < 108 bytes) and reachable by the postgres user when we are root
        self.root = Path(tempfile.mkdtemp(prefix="pixlearn-pg-", dir="/tmp" if root_user and os.path.isdir("/tmp") else None))
        if root_user:
            import pwd

            runuser = shutil.which("runuser")
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pw = None
            if runuser is None or pw is None:
                shutil.rmtree(self.root, ignore_errors=True)
                pytest.skip("PostgreSQL refuses to run as root and there is no 'postgres' user or no runuser to run it as "
                            "(install the postgresql package, which creates the user)")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.prefix = [runuser, "-u", "postgres", "--"]
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, str(self.bin_dir / tool), *args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.root, check=False)

    def start(self) -> None:
        init = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale",
                         "--no-sync")
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        for _ in range(_START_TRIES):
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", opts, "start")
            if started.returncode == 0:
                return
        log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed ({started.returncode}):\n{started.stdout}\n{started.stderr}\n{log}")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.data.is_dir():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _admin(url: str, sql: str) -> None:
    """Run one statement on the ``postgres`` database of ``url``'s cluster, outside a transaction (CREATE DATABASE)."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname="postgres", autocommit=True,
                         connect_timeout=10) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/pixlearn_test`` on a private cluster for this test session."""
    pytest.importorskip("psycopg", reason="the PostgreSQL tests need psycopg: pip install 'pixlearn[postgres]'")
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH; "
                    "install them with scripts/install-system-deps.sh (apt-get install postgresql)")
    cluster = _Cluster(bin_dir)
    try:
        cluster.start()
        url = cluster.url(DATABASE)
        _admin(url, f"CREATE DATABASE {DATABASE}")
        yield url
    finally:
        cluster.stop()


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """The URL of a new empty database on the session's cluster (``postgres_url``), dropped after the test."""
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:16]}"
    _admin(postgres_url, f"CREATE DATABASE {name}")
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
