"""The one table of knobs. Every other place reads it:

- `harness.cli` builds the `run` flags (name, type, help, comma lists for sweepable knobs);
- `harness.data.matrix` validates a `Config` (types, bounds, choices) and builds `Cell`s by keyword;
- a `Cell`'s key, raw folder name and row come from the cell-scope knobs;
- `harness.run.launch` passes the env-var knobs to a target and drops the user's own copies of them;
- `targets.common.Settings` reads the same env vars with the same defaults and bounds;
- the tests iterate the table instead of keeping their own lists.

Adding a knob is one row here (plus the code that uses it, plus a schema version when it becomes
a results column). Kept free of heavy imports: every uvicorn worker imports it.

Scopes:
  axis     targets / scenarios: names checked against the registries; every cell has one of each
  cell     one value per cell; a Cell field and a results.csv column (sweepable ones take lists)
  run      one value per run (window, repeats, pinning)
  harness  set by the harness in a target's environment, never by the user (no flag)

Why one module over 300 lines: it is the table itself, one row per knob; splitting it would make two
places to add a knob.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def _target_names() -> list[str]:
    from targets import TARGETS

    return list(TARGETS)


def _server_names() -> list[str]:
    from harness.data.servers import SERVERS

    return list(SERVERS)


def _scenario_names() -> list[str]:
    from harness.data.scenarios import SCENARIOS

    return list(SCENARIOS)


@dataclass(frozen=True)
class Knob:
    name: str                     # Config attribute (and Settings field for env knobs)
    type: type                    # int, float, str or bool
    default: Any                  # for sweepable knobs the default list; None: "each target's own"
    help: str
    scope: str = "cell"           # axis | cell | run | harness
    bounds: tuple[float, float] | None = None
    choices: tuple[str, ...] | Callable[[], Iterable[str]] | None = None
    env: str | None = None        # the environment variable a target reads
    flag: str | None = None       # CLI flag of `bench.py run`; None: not on the command line
    sweep: bool = False           # takes a comma list; the cells are the product of the lists
    per_target: bool = False      # values may be given per target (`--pool-size thread-pool=5,10`)
    switch: Any = None            # a value-less flag: the value it sets (--no-probe → False)
    column: str | None = None     # Cell field / results column if not `name` (targets → target)
    token: str = ""               # prefix in a cell's raw folder name when the knob is swept
    scenarios: tuple[str, ...] | None = None  # only these scenarios' cells take it (others: None)

    @property
    def col(self) -> str:
        return self.column or self.name

    @property
    def scalar_default(self) -> Any:
        """The default of one cell (a sweepable knob's default list holds one value)."""
        return self.default[0] if isinstance(self.default, list) else self.default

    def allowed(self) -> list[str]:
        c = self.choices
        return list(c() if callable(c) else c or ())

    def check(self, value: Any, shown: str | None = None) -> Any:
        """`value` converted to the knob's type and checked; ValueError with a one-line reason."""
        label = shown or (self.flag or self.name)
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{label} must be true or false, got {value!r}")
            return value
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{label} {value!r} is not a number")
            if self.type is int and value != int(value):
                raise ValueError(f"{label} {value} is not an integer")
            value = self.type(value)
            lo, hi = self.bounds or (-math.inf, math.inf)
            if not lo <= value <= hi:  # NaN fails too
                raise ValueError(f"{label} {value} is out of range: must be between {lo:g} and {hi:g}")
            return value
        value = str(value)
        allowed = self.allowed()
        if allowed and value not in allowed:
            raise ValueError(f"unknown {self.col.replace('_', ' ')} {value!r}{closest(value, allowed)}; "
                             f"choose from {', '.join(allowed)}")
        return value

    # --- as an environment variable (targets.common.Settings, Cell.env) ---

    def from_env(self, environ: Mapping[str, str]) -> Any:
        """The knob as a target reads it: the default when unset, else parsed and checked."""
        assert self.env is not None, self.name
        raw = environ.get(self.env, "")
        if raw == "":
            return self.scalar_default
        if self.type is bool:
            return raw != "0"
        if self.type in (int, float):
            try:
                value = self.type(raw)
            except ValueError:
                kind = "an integer" if self.type is int else "a number"
                raise ValueError(f"{self.env}={raw!r} is not {kind}") from None
            lo, hi = self.bounds or (-math.inf, math.inf)
            if not lo <= value <= hi:
                raise ValueError(f"{self.env}={value} is outside [{lo:g}, {hi:g}]")
            return value
        allowed = self.allowed()
        if allowed and raw not in allowed:
            raise ValueError(f"{self.env}={raw!r} must be one of {tuple(allowed)}")
        return raw

    def to_env(self, value: Any) -> str | None:
        if value is None:
            return None
        if self.type is bool:
            return "1" if value else "0"
        return str(value)

    # --- as text in results.csv (the resume key) ---

    def from_text(self, text: Any) -> Any:
        """A results.csv cell (or a Cell value) in the knob's type; None when empty."""
        if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
            return None
        if self.type is bool:
            return text if isinstance(text, bool) else str(text).strip().lower() in ("true", "1", "yes")
        if self.type is int:
            return int(float(text))
        if self.type is float:
            return float(text)
        return str(text)


def closest(name: str, choices: Iterable[str]) -> str:
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


# The table. Order matters: it is the order of the parameter columns in results.csv.
TABLE: list[Knob] = [
    Knob("targets", str, None, "target names (default: the five core targets)", scope="axis",
         choices=_target_names, flag="--targets", sweep=True, column="target"),
    Knob("scenarios", str, ["io", "cpu", "mixed"], "scenarios, e.g. io,cpu,mixed", scope="axis",
         choices=_scenario_names, flag="--scenarios", sweep=True, column="scenario"),
    Knob("workers", int, [1, 2, 4], "uvicorn worker processes", bounds=(1, 64), flag="--workers",
         sweep=True, token="w"),
    Knob("users", int, [32], "concurrent closed-loop users", bounds=(1, 2000), flag="--users", sweep=True,
         token="u"),
    Knob("loop", str, ["uvloop"], "event loop: uvloop or asyncio", choices=("uvloop", "asyncio"),
         flag="--loop", sweep=True, token="loop-"),
    Knob("pool_size", int, None, "thread limiter / executor size (POOL_SIZE); a plain list applies to "
         "every target with a pool, TARGET=LIST to one target (repeat the flag); default: each "
         "target's own", bounds=(1, 1024), env="POOL_SIZE", flag="--pool-size", sweep=True,
         per_target=True, token="p"),
    Knob("io_ms", int, [50], "upstream wait per call, ms (IO_MS)", bounds=(0, 5000), env="IO_MS",
         flag="--io-ms", sweep=True, token="io"),
    Knob("cpu_ms", int, [20], "CPU work per request, ms (CPU_MS)", bounds=(0, 1000), env="CPU_MS",
         flag="--cpu-ms", sweep=True, token="cpu"),
    Knob("fanout", int, [3], "upstream calls per /io request (FANOUT)", bounds=(1, 16), env="FANOUT",
         flag="--fanout", sweep=True, token="f"),
    Knob("cpu_kind", str, ["python"], "python (holds the GIL) or native (hashlib, releases it)",
         choices=("python", "native"), env="CPU_KIND", flag="--cpu-kind", sweep=True, token="kind-"),
    Knob("http_client", str, ["httpx"], "the async targets' client: httpx or aiohttp",
         choices=("httpx", "aiohttp"), env="HTTP_CLIENT", flag="--http-client", sweep=True,
         token="client-"),
    Knob("http_connections", int, [100], "HTTP client connection pool per worker (HTTP_CONNECTIONS)",
         bounds=(1, 10_000), env="HTTP_CONNECTIONS", flag="--http-connections", sweep=True, token="hc"),
    Knob("launch", str, ["uvicorn"], "uvicorn (--workers W, one shared socket) or reuseport (W "
         "single-worker uvicorns on SO_REUSEPORT sockets: even connection spread)",
         choices=("uvicorn", "reuseport"), flag="--launch", sweep=True, token="launch-"),
    Knob("thread_tokens", int, None, "anyio's default thread limiter per worker (the tokens `def` "
         "routes hold; THREAD_TOKENS), set at start-up; default: anyio's 40. The thread-pool target "
         "sizes it with --pool-size", bounds=(1, 10_000), env="THREAD_TOKENS", flag="--thread-tokens",
         sweep=True, token="tt"),
    Knob("server", str, ["uvicorn"], "the ASGI server: uvicorn, gunicorn (uvicorn workers), gunicorn-asgi "
         "(gunicorn's own worker), granian or hypercorn, each with W workers (see docs/servers.md)",
         choices=_server_names, flag="--server", sweep=True, token="srv-"),
    Knob("probe", bool, True, "switch off the in-worker probe", env="PROBE", flag="--no-probe",
         switch=False),
    # load: closed loop (users) or open loop (rate), and how many Locust processes make it
    Knob("rate", float, [0.0], "open loop: requests/s per cell, sent at intended times whatever the "
         "server does (latency counted from them); 0 = closed loop with --users", bounds=(0, 100_000),
         flag="--rate", sweep=True, token="rate"),
    Knob("arrivals", str, ["constant"], "open-loop spacing of the intended send times",
         choices=("constant", "poisson"), flag="--arrivals", sweep=True, token="arr-"),
    Knob("load_processes", int, [1], "Locust load processes (N > 1: a master and N forked workers)",
         bounds=(1, 64), flag="--load-processes", sweep=True, token="lp"),
    # the db scenario's (other scenarios' cells leave them empty: they never open a connection)
    Knob("db_queries", int, [2], "queries per /db request (DB_QUERIES)", bounds=(0, 16), env="DB_QUERIES",
         flag="--db-queries", sweep=True, token="q", scenarios=("db",)),
    Knob("db_ms", int, [20], "pg_sleep per /db query, ms (DB_MS)", bounds=(0, 5000), env="DB_MS",
         flag="--db-ms", sweep=True, token="dbms", scenarios=("db",)),
    Knob("db_pool", int, None, "database connections per worker (DB_POOL); default: 10, or "
         "SQLAlchemy's own 5 + 10 overflow", bounds=(1, 1000), env="DB_POOL", flag="--db-pool", sweep=True,
         token="dbp", scenarios=("db",)),
    Knob("db_pool_timeout", float, 30.0, "seconds a /db request waits for a connection before a 503 "
         "(DB_POOL_TIMEOUT)", bounds=(0.001, 600), env="DB_POOL_TIMEOUT", flag="--db-pool-timeout",
         scenarios=("db",)),
    Knob("db_driver", str, ["asyncpg"], "the async targets' database driver: asyncpg, psycopg (async "
         "pool) or sqlalchemy (async engine, QueuePool)", choices=("asyncpg", "psycopg", "sqlalchemy"),
         env="DB_DRIVER", flag="--db-driver", sweep=True, token="drv-", scenarios=("db",)),
    # run-wide
    Knob("duration", float, 5.0, "measured seconds per cell", scope="run", bounds=(1, 3600),
         flag="--duration"),
    Knob("warmup", float, 2.0, "seconds excluded before the window", scope="run", bounds=(0, 600),
         flag="--warmup"),
    Knob("repeat", int, 1, "repetitions of every cell", scope="run", bounds=(1, 100), flag="--repeat"),
    Knob("adapt_window", bool, True, "never stretch a slow cell's warm-up/duration (docs/how-it-measures.md)",
         scope="run", flag="--fixed-window", switch=False),
    Knob("pin", bool, False, "put the target and the load generator on disjoint cores (needs ≥ 2 cores)",
         scope="run", flag="--pin", switch=True),
    Knob("max_in_flight", int, 1000, "open loop: requests in flight at most; a send due beyond it is "
         "counted as dropped", scope="run", bounds=(1, 10_000), flag="--max-in-flight"),
    # your own app or a running server, instead of the built-in targets (checked in harness.data.matrix)
    Knob("app", str, None, "launch your ASGI app 'pkg.module:app' like a built-in target (the probe is "
         "wrapped around it, unedited)", scope="run", flag="--app"),
    Knob("app_dir", str, None, "where --app's module is imported from (default: .)", scope="run",
         flag="--app-dir"),
    Knob("python", str, None, "the interpreter (or virtualenv) --app runs in: its own packages and its "
         "own uvicorn (or --server); the schema is read with it too. Default: the harness's",
         scope="run", flag="--python"),
    Knob("env_file", str, None, "a dotenv file (as uvicorn's --env-file) whose variables --app's workers "
         "and its schema read get", scope="run", flag="--env-file"),
    Knob("cwd", str, None, "--app's working directory, for the relative paths it opens (default: the "
         "harness's folder)", scope="run", flag="--cwd"),
    Knob("url", str, None, "drive a server that is already running (http://host:port); launches nothing",
         scope="run", flag="--url"),
    Knob("allow_non_loopback", bool, False, "permit a --url or a --master-bind on another address than "
         "loopback", scope="run", flag="--allow-non-loopback", switch=True),
    # load processes on other machines (`bench.py load-worker --master HOST:PORT` there)
    Knob("remote_load_workers", int, 0, "load processes on other machines that join every cell "
         "(each runs this command's `load-worker --master HOST:PORT`); 0 = none", scope="run", bounds=(0, 64),
         flag="--remote-load-workers"),
    Knob("master_bind", str, None, "HOST:PORT where --remote-load-workers find this run (each cell's "
         "Locust master also listens on HOST, on a free port it announces there)", scope="run",
         flag="--master-bind"),
    Knob("remote_wait", float, 60.0, "seconds a cell waits for its remote load workers before it fails",
         scope="run", bounds=(1, 3600), flag="--remote-wait"),
    Knob("paths", str, None, "work endpoint(s) of --app/--url, comma list, each one a scenario",
         scope="run", flag="--path"),
    Knob("health_path", str, None, "the cheap endpoint the probe user times (default: /_bench/health "
         "under --app, answered by the wrapper on the app's loop; /health under --url)", scope="run",
         flag="--health-path"),
    Knob("locustfile", str, None, "your own Locust users instead of --path (the harness adds its "
         "/health probe user and its recorder)", scope="run", flag="--locustfile"),
    Knob("setup", str, None, "a Python file defining setup(base_url): run before each cell's load to seed "
         "your app's data (see docs/audit.md)", scope="run", flag="--setup"),
    Knob("screen", bool, False, "every --path in one cell, one window (the audit's screen): each user "
         "requests the paths in turn; each path's own figures go to raw/<cell>/routes.csv", scope="run",
         flag="--screen", switch=True),
    Knob("requests", str, None, "a JSON file of each --path's method, body and content type and of the "
         "headers of every request, as an audit writes it (requests.json in its run folder)",
         scope="run", flag="--requests"),
    # db cells get it from the harness: the throwaway server's, or this one
    Knob("db_url", str, None, "an existing PostgreSQL (postgresql://...) instead of a throwaway one the "
         "harness starts; never started or stopped by the harness", scope="run", env="DB_URL",
         flag="--db-url"),
    # set by the harness in every target's environment
    Knob("upstream_url", str, "http://127.0.0.1:8001", "base URL of the local upstream", scope="harness",
         env="UPSTREAM_URL"),
    Knob("metrics_dir", str, None, "where the in-worker probe writes", scope="harness", env="METRICS_DIR"),
    # a rate: zero or less would silently do no work
    Knob("cpu_units_per_ms", float, None, "calibrated CPU work rate (each worker calibrates if unset)",
         scope="harness", bounds=(1e-6, 1e9), env="CPU_UNITS_PER_MS"),
]

KNOBS: dict[str, Knob] = {k.name: k for k in TABLE}

# `bench.py run --help` in groups, in this order (tests/test_knobs.py: every flagged knob in exactly one).
HELP_GROUPS: dict[str, tuple[str, ...]] = {
    "what to run": ("targets", "scenarios", "app", "app_dir", "python", "env_file", "cwd", "paths",
                    "screen", "locustfile", "setup", "requests", "health_path", "url", "allow_non_loopback"),
    "sizes": ("workers", "users", "pool_size", "thread_tokens", "http_connections", "db_pool", "rate",
              "arrivals", "max_in_flight", "load_processes"),
    "workload": ("io_ms", "cpu_ms", "fanout", "cpu_kind", "http_client", "db_queries", "db_ms",
                 "db_pool_timeout", "db_driver", "db_url"),
    "server": ("server", "launch", "loop"),
    "measurement": ("duration", "warmup", "repeat", "adapt_window", "pin", "probe"),
    "load from other machines": ("remote_load_workers", "master_bind", "remote_wait"),
}
CONFIG_KNOBS = [k for k in TABLE if k.scope in ("axis", "cell", "run")]
CELL_KNOBS = [k for k in TABLE if k.scope == "cell"]  # Cell fields besides target and scenario
SWEEP_KNOBS = [k for k in CELL_KNOBS if k.sweep]
ENV_KNOBS = [k for k in TABLE if k.env]  # what targets.common.Settings reads
TARGET_ENV_VARS = tuple(k.env for k in ENV_KNOBS if k.env)  # never inherited from the user's shell

# results.csv identity of a (cell, repeat): the axes, every cell knob, the repeat.
PARAM_COLUMNS = ["target", "scenario", *(k.col for k in CELL_KNOBS), "repeat"]
_KEY_TYPES: dict[str, Knob] = {
    "target": Knob("target", str, None, ""), "scenario": Knob("scenario", str, None, ""),
    **{k.col: k for k in CELL_KNOBS}, "repeat": KNOBS["repeat"],
}


def cell_key(row: Mapping[str, Any]) -> tuple:
    """The identity of a (cell, repeat), from a results.csv row (text) or a Cell's params alike.

    A column the row lacks (a results.csv of an older schema) counts as empty.
    """
    return tuple(_KEY_TYPES[c].from_text(row.get(c)) for c in PARAM_COLUMNS)
