"""A throwaway PostgreSQL for the db scenario: start, measure, watch, stop.

The cluster lives in a temporary folder and listens on 127.0.0.1 only, with benchmark settings
(fsync off: nothing here needs to survive a crash). Binaries come from Debian's packages
(/usr/lib/postgresql/<version>/bin) when present, else from the `pgserver` wheel (a project
dependency, which bundles PostgreSQL). `postgres` runs in the foreground as a child started through
harness.system.procs, so Ctrl-C, SIGTERM and crashes stop it like any other child. As root it runs as the
`postgres` system user (initdb and postgres refuse root).

With `--db-url` an existing server is used instead: it is never started or stopped here.

Why one module over 300 lines: start, capacity check, watcher and stop are one cluster's life and
share its folder, port and process; split, each part would need the others' private state.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.run.launch import LOOPBACK, LaunchError, free_port, log_tail
from harness.system import procs
from targets import DB_POOL_DEFAULT, db_pool_max

TARGET_APPLICATION = "bench-target"  # targets.db.APPLICATION_NAME (not imported: it pulls FastAPI)
# Connections beyond the targets' own: the capacity burst's extra, the activity watcher, psql-style
# pokes, and PostgreSQL's 3 reserved superuser slots.
CONNECTION_MARGIN = 10
MIN_MAX_CONNECTIONS = 100  # PostgreSQL's default; smaller sweeps keep it
CAPACITY_SECONDS = 2.0
CAPACITY_SLEEP_MS = 20
RUN_USER = "postgres"
FOLDER_PREFIX = "bench-pg-"
STALE_AFTER_S = 600  # a cluster folder without a running postmaster for this long is a killed run's


class DatabaseError(LaunchError):
    """PostgreSQL could not be found, started or reached; the message says why."""


def connections_needed(cells) -> int:
    """The most connections one db cell's target may open at once: W × pool per worker."""
    return max((c.workers * db_pool_max(c.target, c.db_driver, c.db_pool)
                for c in cells if c.scenario == "db"), default=0)


def max_connections_for(needed: int) -> int:
    """Room for the targets twice over (so the capacity burst can measure well past any cell) plus
    the margin; never below PostgreSQL's default."""
    return max(MIN_MAX_CONNECTIONS, 2 * needed + CONNECTION_MARGIN)


def find_binaries() -> tuple[Path, str]:
    """(bin folder with initdb and postgres, where it came from): Debian's newest, else pgserver's."""
    def usable(d: Path) -> bool:
        return (d / "initdb").is_file() and (d / "postgres").is_file()

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    for found in reversed(debian):
        if usable(Path(found)):
            return Path(found), f"debian {Path(found).parent.name}"
    pgserver: Any
    try:
        import pgserver
    except ImportError:
        pgserver = None
    if pgserver is not None:
        wheel = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if usable(wheel):
            return wheel, "pgserver wheel"
    raise DatabaseError("no PostgreSQL binaries: install the Debian package postgresql or "
                        "`pip install pgserver` (a project dependency: `make install`)")


def _run_as() -> str | None:
    """The system user for initdb/postgres: ourselves unless root, else `postgres` (created if
    missing, as the pgserver wheel does for its own user)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_USER],
                       check=True, capture_output=True)
    return RUN_USER


@dataclass
class Database:
    url: str
    owned: bool  # started (and to be stopped) by us
    max_connections: int
    source: str
    version: str = ""
    proc: subprocess.Popen | None = None
    folder: Path | None = None
    capacity: dict | None = None
    log_path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then TERM → KILL of anything left; the folder is removed."""
        if self.proc is not None:
            procs.stop_tree(self.proc)
            self.proc = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def meta(self) -> dict:
        return {"url": self.url if not self.owned else "(throwaway cluster)", "source": self.source,
                "version": self.version, "owned": self.owned, "max_connections": self.max_connections,
                "capacity": self.capacity, **self.extra}


def _connect(url: str, timeout: float = 2.0):
    import psycopg

    return psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True)


def _postmaster_alive(data: Path) -> bool:
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return psutil.pid_exists(pid)


def remove_stale_clusters(parent: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the cluster folders of runs that were killed (SIGKILL: no clean-up ran, the reaper
    stopped the server but cannot know its folder): no live postmaster and untouched for
    STALE_AFTER_S (a folder being initialised has no postmaster yet, but is fresh). Returns them."""
    parent = parent or Path(tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    for folder in parent.glob(FOLDER_PREFIX + "*"):
        try:
            idle = now - folder.stat().st_mtime
        except OSError:
            continue
        if folder.is_dir() and idle > STALE_AFTER_S and not _postmaster_alive(folder / "data"):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def start_cluster(log_path: Path, max_connections: int, timeout: float = 60.0) -> Database:
    """initdb into a temp folder, then `postgres` in the foreground on 127.0.0.1:<free port>."""
    bin_dir, source = find_binaries()
    user = _run_as()
    remove_stale_clusters()
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
    data = folder / "data"
    db = Database("", True, max_connections, source, folder=folder, log_path=log_path)
    try:
        if user is not None:
            shutil.chown(folder, user, user)
        init = procs.spawn([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                            "--no-sync", "--encoding=UTF8", "--locale=C"],
                           log_path=log_path, cwd=folder, user=user, role="database")
        try:
            code = init.wait(timeout=timeout)
        finally:
            procs.stop_tree(init)
        if code != 0:
            raise DatabaseError(f"initdb failed (exit {code}): {log_tail(log_path)}")
        port = free_port()
        settings = {
            "listen_addresses": LOOPBACK, "port": str(port), "unix_socket_directories": str(folder),
            "max_connections": str(max_connections),
            # benchmark settings: durability is not what is measured
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        }
        cmd = [str(bin_dir / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        db.proc = procs.spawn(cmd, log_path=log_path, cwd=folder, user=user, role="database",
                              first_signal=signal.SIGINT)
        db.url = f"postgresql://postgres@{LOOPBACK}:{port}/postgres"
        deadline = time.monotonic() + timeout
        while True:
            if db.proc.poll() is not None:
                raise DatabaseError(f"postgres exited with code {db.proc.returncode}: {log_tail(log_path)}")
            try:
                with _connect(db.url, 1.0) as conn:
                    db.version = conn.execute("SHOW server_version").fetchone()[0]
                break
            except Exception as exc:  # noqa: BLE001 - not up yet (refused, starting up)
                if time.monotonic() > deadline:
                    raise DatabaseError(f"postgres did not accept connections within {timeout:.0f}s: "
                                        f"{exc}") from None
                time.sleep(0.05)
        return db
    except BaseException:
        db.stop()
        raise


def use_existing(url: str, needed: int) -> Database:
    """--db-url: check that it answers and has room for the sweep; never started or stopped here."""
    try:
        with _connect(url, 5.0) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            max_conn = int(conn.execute("SHOW max_connections").fetchone()[0])
            reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
            in_use = conn.execute("SELECT count(*) FROM pg_stat_activity "
                                  "WHERE backend_type = 'client backend'").fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - any connection problem is a one-line error
        raise DatabaseError(f"--db-url: cannot connect: {' '.join(str(exc).split())[:200]}") from None
    free = max_conn - reserved - in_use
    if needed > free:
        raise DatabaseError(f"--db-url: the sweep needs {needed} connections, the server has {free} free "
                            f"(max_connections {max_conn})")
    return Database(url, False, max_conn, "external", version, extra={"free_connections": free})


def start(run_dir: Path, cells, db_url: str | None) -> Database:
    """The database for a run's db cells: an existing one, or a throwaway cluster sized for them."""
    needed = connections_needed(cells)
    if db_url:
        return use_existing(db_url, needed)
    return start_cluster(run_dir / "postgres.log", max_connections_for(needed))


# --- capacity: many connections sleeping in pg_sleep, against the ideal ---

async def _burst(url: str, connections: int, sleep_ms: float, seconds: float, warmup: float) -> dict:
    import asyncpg

    settings = {"application_name": "bench-capacity"}
    conns = await asyncio.gather(*(asyncpg.connect(url, server_settings=settings)
                                   for _ in range(connections)))
    done: list[float] = []
    sql = f"SELECT pg_sleep({sleep_ms / 1000.0!r}::float8)"
    stop_at = time.monotonic() + warmup + seconds

    async def loop(conn) -> None:
        while time.monotonic() < stop_at:
            await conn.execute(sql)
            done.append(time.monotonic())

    start = time.monotonic()
    try:
        await asyncio.gather(*(loop(c) for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    t0 = start + warmup
    inside = sum(1 for t in done if t0 <= t < t0 + seconds)
    return {"connections": connections, "sleep_ms": sleep_ms, "seconds": seconds,
            "qps": round(inside / seconds, 1), "ideal_qps": round(connections * 1000 / sleep_ms, 1)}


def measure_capacity(db: Database, needed: int, sleep_ms: float = CAPACITY_SLEEP_MS,
                     seconds: float = CAPACITY_SECONDS) -> dict:
    """Queries/s the server sustains with many connections each running pg_sleep(sleep_ms) in a loop:
    twice the largest cell's connections (at least 40), within what the server allows."""
    room = db.max_connections - CONNECTION_MARGIN
    if not db.owned:
        room = min(room, db.extra.get("free_connections", room) - 2)
    connections = max(1, min(room, max(2 * needed, 4 * DB_POOL_DEFAULT)))
    db.capacity = asyncio.run(_burst(db.url, connections, sleep_ms, seconds, warmup=0.5))
    return db.capacity


# --- from outside: how many of the targets' connections are busy ---

class ActivityWatcher:
    """Polls pg_stat_activity in a thread: the targets' backends that are not idle (running a query
    or inside a transaction), i.e. connections held by a request. `max_between(t0, t1)` is the
    most seen in that window."""

    INTERVAL_S = 0.05

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int]] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-activity", daemon=True)

    def __enter__(self) -> ActivityWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        sql = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
               "AND state IS NOT NULL AND state <> 'idle'")
        try:
            with _connect(self.url) as conn:
                while not self._stop.is_set():
                    count = conn.execute(sql, (TARGET_APPLICATION,)).fetchone()[0]
                    self.samples.append((time.time(), int(count)))
                    self._stop.wait(self.INTERVAL_S)
        except Exception as exc:  # noqa: BLE001 - a lost watcher leaves the column empty, not the cell
            self.error = f"{type(exc).__name__}: {exc}"

    def max_between(self, t0: float, t1: float) -> float:
        inside = [n for t, n in self.samples if t0 <= t < t1]
        return float(max(inside)) if inside else float("nan")
