"""The sweep as data: presets and flags → a validated Config → a list of Cells.

Validation happens here, before anything is launched, so bad input costs nothing.

Why one module over 300 lines: the Config's checks, the presets and the cell product are one
validation pass (a preset is checked like flags); each check is a short function of its own.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from harness.data import app_env, knobs, model, servers, setup_file
from harness.data.address import AddressError, is_loopback, parse_address
from harness.data.knobs import KNOBS, closest
from targets import TARGETS, core_targets, db_pool_max

# Kept for `bench.py serve` and older callers: the allowed values live in the knob table.
LOOPS = tuple(KNOBS["loop"].allowed())

# Measurement window sizing: enough completions for a p99, warm-up past one full queue cycle.
MIN_REQUESTS = 100
EXPECTED_EFFICIENCY = 0.8  # size the window as if the cell reaches 80% of its ceiling
MAX_STRETCH = 4.0  # never stretch a cell's window beyond this multiple of the asked duration

ALL = "*"  # key of the pool sizes that apply to every target with a pool


SCREEN = "screen"  # the scenario of the cell that requests every --path at once (the audit's screen)
REQUEST_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FOREIGN_ONLY = ("paths", "locustfile", "app_dir", "health_path", "setup", "requests")  # need --app/--url


class ConfigError(ValueError):
    """Bad input: a one-line message for the user."""


def _closest(name: str, choices) -> str:
    return closest(name, choices)


class Config:
    """Validated knob values, one attribute per knob of the table (harness/data/knobs.py).

    Sweepable knobs hold lists (the cells are their product); `pool_size` holds pool sizes per
    target ({"*": [...]} for every target with a pool; {} for each target's own default).
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is immutable: use replace()")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self._values == other._values

    def __repr__(self) -> str:
        return f"Config({self._values!r})"

    def replace(self, **changes: Any) -> Config:
        """A validated copy with some knobs changed."""
        return validate({**self._values, **changes})

    def knobs(self) -> dict[str, Any]:
        """Plain values (JSON-able), as meta.json stores them and make_config takes them back."""
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self._values.items()}

    def pool_sizes(self, target: str) -> list[int | None]:
        """Pool sizes to sweep for `target`: [None] when it has no pool, its own default if none given."""
        record = TARGETS[target]
        if record.pool_kind == "none":
            return [None]
        given = self.pool_size.get(target) or self.pool_size.get(ALL)
        return list(given) if given else [record.default_pool_size()]

    def swept(self) -> tuple[str, ...]:
        """Cell knobs that take more than one value in this sweep (they name the raw folders)."""
        out = []
        for k in knobs.SWEEP_KNOBS:
            if k.per_target:
                if any(len(self.pool_sizes(t)) > 1 for t in self.targets):
                    out.append(k.name)
            elif len(getattr(self, k.name)) > 1:
                out.append(k.name)
        return tuple(out)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _check_list(knob: knobs.Knob, values: Any) -> list:
    if knob.default is None and (values is None or values == [None]):
        return [None]  # "each target's or driver's own default" (db_pool)
    values = _as_list(values)
    if not values:
        raise ConfigError(f"no {knob.name} given" if knob.scope == "axis"
                          else f"{knob.flag} needs at least one value")
    try:
        checked = [knob.check(v) for v in values]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return list(dict.fromkeys(checked))  # a repeated value would run identical cells twice


def _check_pool_sizes(knob: knobs.Knob, value: Any, targets: list[str]) -> dict[str, list[int]]:
    if value is None:
        return {}
    if not isinstance(value, dict):  # a plain list (or an older run's single value): every pooled target
        value = {ALL: value}
    out: dict[str, list[int]] = {}
    for name, sizes in value.items():
        if name != ALL:
            if name not in TARGETS:
                raise ConfigError(f"{knob.flag}: unknown target {name!r}{closest(name, TARGETS)}")
            if name not in targets:
                raise ConfigError(f"{knob.flag}: pool sizes given for {name}, which is not among the targets")
            if TARGETS[name].pool_kind == "none":
                raise ConfigError(f"{knob.flag}: {name} has no pool to size")
        out[name] = _check_list(knob, sizes)
    return out


def validate(values: Mapping[str, Any]) -> Config:
    """Check every knob against the table; returns the immutable Config."""
    unknown = set(values) - {k.name for k in knobs.CONFIG_KNOBS}
    if unknown:
        raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
    out: dict[str, Any] = {}
    for knob in knobs.CONFIG_KNOBS:
        value = values.get(knob.name)
        if value is None:
            value = knob.default
        if knob.name == "targets" and value is None:
            value = core_targets()
        if knob.per_target:
            continue  # needs the targets; below
        if value is None and knob.scope == "run":  # an optional setting left unset (--app, --url...)
            out[knob.name] = None
            continue
        if knob.name == "paths":  # a list of endpoints, not a swept cell knob: they are scenarios
            items = value.split(",") if isinstance(value, str) else _as_list(value)
            out["paths"] = list(dict.fromkeys(str(p).strip() for p in items if str(p).strip()))
            continue
        if knob.sweep:
            out[knob.name] = _check_list(knob, value)
        elif value is None and knob.default is None:
            out[knob.name] = None  # unset and optional (db_url)
        else:
            try:
                out[knob.name] = knob.check(value)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    if out["app"] is not None or out["url"] is not None:
        if values.get("targets") is not None:
            raise ConfigError("--app/--url replace --targets: give one or the other")
        out["targets"] = []
        _check_foreign(out)
    elif any(out[k] is not None for k in FOREIGN_ONLY) or out["screen"]:
        raise ConfigError("--path, --screen, --locustfile, --app-dir, --health-path, --setup and --requests "
                          "need --app or --url")
    _check_remote(out)
    if out["locustfile"] and any(out["rate"]):
        raise ConfigError("--rate drives --path (or a built-in scenario); --locustfile is closed-loop only")
    for knob in knobs.CONFIG_KNOBS:
        if knob.per_target:
            out[knob.name] = _check_pool_sizes(knob, values.get(knob.name), out["targets"])
    _check_db(out)
    _check_thread_tokens(out)
    _check_server(out)
    _check_app_env(out)
    return Config({k.name: out[k.name] for k in knobs.CONFIG_KNOBS})  # in the table's order


def _check_thread_tokens(out: dict[str, Any]) -> None:
    """Workers the harness launches apply it (the thread-pool target's cells leave it out: it sizes the
    same limiter with --pool-size, which its ceiling uses)."""
    if out["thread_tokens"] != [None] and out["url"] is not None:
        raise ConfigError("--thread-tokens is applied by the workers the harness launches; "
                          "--url launches none")


def _check_app_env(out: dict[str, Any]) -> None:
    """--python, --env-file and --cwd: the app the harness launches runs with them."""
    given = [knobs.KNOBS[k].flag for k in ("python", "env_file", "cwd") if out[k] is not None]
    if given and out["app"] is None:
        raise ConfigError(f"{', '.join(map(str, given))}: the environment of the app the harness launches; "
                          "give --app")
    try:
        if out["python"] is not None:
            out["python"] = app_env.check_python(out["python"])
        if out["env_file"] is not None:
            out["env_file"] = app_env.check_env_file(out["env_file"])
        if out["cwd"] is not None:
            out["cwd"] = app_env.check_cwd(out["cwd"])
    except app_env.AppEnvError as exc:
        raise ConfigError(str(exc)) from None
    if out["python"] is not None and "reuseport" in out["launch"]:
        raise ConfigError("--launch reuseport starts the harness's own launcher, which --python cannot run: "
                          "use --launch uvicorn with --python")


def _check_foreign(out: dict[str, Any]) -> None:
    """--app / --url, checked before anything is launched; the app's own code is not run here."""
    if out["app"] is not None and out["url"] is not None:
        raise ConfigError("--app launches your app, --url drives one already running: give one of them")
    if out["app"] is not None:
        module, sep, attr = out["app"].partition(":")
        if not sep or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
            raise ConfigError(f"--app {out['app']!r}: expected 'pkg.module:app' (module path, a colon, "
                              "the ASGI object)")
        app_dir = os.path.abspath(out["app_dir"] or os.getcwd())
        if not os.path.isdir(app_dir):
            raise ConfigError(f"--app-dir {out['app_dir']!r} is not a directory")
        out["app_dir"] = app_dir
        import importlib.machinery

        top = module.split(".")[0]
        if importlib.machinery.PathFinder.find_spec(top, [app_dir]) is None:
            raise ConfigError(f"--app {out['app']!r}: no module {top!r} in {app_dir} (set --app-dir)")
        if out["paths"] is None and out["locustfile"] is None:
            raise ConfigError("--app needs --path /endpoint (comma list) or --locustfile FILE")
    else:
        parts = urlsplit(out["url"])
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(f"--url {out['url']!r}: expected http://host:port (no path; use --path)")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ConfigError(f"--url {out['url']!r}: bad port") from None
        if not is_loopback(parts.hostname) and not out["allow_non_loopback"]:
            raise ConfigError(f"--url {out['url']}: not a loopback address; add --allow-non-loopback to "
                              "load a server on another machine")
        out["url"] = out["url"].rstrip("/")
    for path in [*(out["paths"] or []), *([out["health_path"]] if out["health_path"] else [])]:
        method, _, rest = path.partition(" ")  # the audit's 'POST /login'
        if not path.startswith("/") and not (method in REQUEST_METHODS and rest.startswith("/")):
            raise ConfigError(f"path {path!r} must start with '/'")
    if out["setup"] is not None:
        try:
            out["setup"] = setup_file.check(out["setup"])
        except setup_file.SetupError as exc:
            raise ConfigError(str(exc)) from None
    if out["screen"] and not out["paths"]:
        raise ConfigError("the screen requests every --path in one window: give --path")
    if out["requests"] is not None:
        if not os.path.isfile(out["requests"]):
            raise ConfigError(f"--requests {out['requests']!r} is not a file")
        out["requests"] = os.path.abspath(out["requests"])
    if out["locustfile"] is not None:
        if not os.path.isfile(out["locustfile"]):
            raise ConfigError(f"--locustfile {out['locustfile']!r} is not a file")
        out["locustfile"] = os.path.abspath(out["locustfile"])


def _check_remote(out: dict[str, Any]) -> None:
    """--remote-load-workers K --master-bind HOST:PORT, checked before anything is launched."""
    k, bind = out["remote_load_workers"], out["master_bind"]
    if bind is None:
        if k:
            raise ConfigError("--remote-load-workers needs --master-bind HOST:PORT (where the load workers "
                              "find this run)")
        return
    if not k:
        raise ConfigError("--master-bind is where --remote-load-workers find this run: give both")
    try:
        host, port = parse_address(bind, "--master-bind", bind=True)
    except AddressError as exc:
        raise ConfigError(str(exc)) from None
    out["master_bind"] = f"{host}:{port}"
    if is_loopback(host):
        return
    if not out["allow_non_loopback"]:
        raise ConfigError(f"--master-bind {bind}: not a loopback address; add --allow-non-loopback to let "
                          "load workers on other machines join")
    url_host = urlsplit(out["url"]).hostname if out["url"] else None
    if url_host is None or is_loopback(url_host):
        raise ConfigError("load workers on other machines cannot reach a server on this machine's loopback "
                          "(built-in targets and --app listen on 127.0.0.1 only): start the server yourself "
                          "and drive it with --url http://HOST:PORT --allow-non-loopback")



# A db sweep may ask for at most this many connections at once (W × DB_POOL of its largest cell):
# beyond it a small machine measures process thrashing, not pools.
MAX_DB_CONNECTIONS = 400


def _check_db(out: dict[str, Any]) -> None:
    if out["db_url"] is not None and not str(out["db_url"]).startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"--db-url {out['db_url']!r} is not a postgresql:// URL")
    if "db" not in out["scenarios"]:
        return
    needed = max((w * db_pool_max(t, d, p) for w in out["workers"] for t in out["targets"]
                  for d in out["db_driver"] for p in out["db_pool"]), default=0)
    if needed > MAX_DB_CONNECTIONS:
        raise ConfigError(f"the db sweep needs up to {needed} database connections at once (workers × "
                          f"--db-pool); the limit is {MAX_DB_CONNECTIONS}")


def _check_server(out: dict[str, Any]) -> None:
    """--server with --launch reuseport (a uvicorn option) or with --url (nothing is launched)."""
    others = [s for s in out["server"] if s != "uvicorn"]
    if others and out["url"] is not None:
        raise ConfigError(f"--server {others[0]} launches the target; --url drives a server already running")
    if others and any(launch != "uvicorn" for launch in out["launch"]):
        try:
            servers.check_combination(others[0], next(la for la in out["launch"] if la != "uvicorn"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def cores_available() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _tune_parts() -> list[dict]:
    """The article's pool questions on this machine, in one run of a few minutes (one worker):

    - thread-pool /io: thread tokens around the user count (is more threads than users worth it?);
    - process-pool and mixed /cpu: pool 1 up to 4 × the cores (where do processes stop helping?);
    - correct-async /io: the HTTP connection pool (how many connections does async I/O need?);
    - correct-async /db: the database pool from well below to the user count (how big a pool for
      32 users? below it requests queue for a connection, the wait shows in db_pool_wait_p99_ms).
    """
    k = cores_available()
    base = dict(workers=[1], users=[32], duration=5.0, warmup=2.0)
    return [
        dict(base, targets=["thread-pool"], scenarios=["io"],
             pool_size={"thread-pool": [8, 16, 24, 32, 48, 64]}),
        dict(base, targets=["process-pool", "mixed"], scenarios=["cpu"],
             pool_size=sorted({1, k, 2 * k, 4 * k})),
        dict(base, targets=["correct-async"], scenarios=["io"], http_connections=[8, 16, 32, 64, 128]),
        dict(base, targets=["correct-async"], scenarios=["db"], db_pool=[4, 8, 16, 32]),
    ]


def _servers_parts() -> list[dict]:
    """Does the ASGI server matter? The same four workloads under every server, W = 1 and the cores:

    - /health on correct-async: the framework's and the server's own cost is all there is;
    - /io (one 10 ms upstream call) on correct-async: async I/O, the server's cost shared with the work;
    - /io on fake-async: the loop is blocked, the ceiling W/(F·L) whatever accepts the connection;
    - /cpu on process-pool: the pattern (processes) decides.
    40 cells of about 9 s each on 2 cores (the fake-async wait is 10 ms so its cells need no stretch).
    /health gets two Locust processes: one saturated its core there (92–99% at 7.8–9.1k rps under
    every server but hypercorn, 2026-12-04), which made those cells untrusted.
    """
    base = dict(workers=sorted({1, cores_available()}), users=[32], server=list(servers.SERVERS),
                duration=5.0, warmup=2.0)
    return [
        dict(base, targets=["correct-async"], scenarios=["health"], load_processes=[2]),
        dict(base, targets=["correct-async", "fake-async"], scenarios=["io"], io_ms=[10], fanout=[1]),
        dict(base, targets=["process-pool"], scenarios=["cpu"]),
    ]


# Presets: overrides of the table's defaults; a list is a preset in parts (each its own product,
# all cells in one run folder).
PRESETS: dict[str, dict | list[dict]] = {
    "smoke": dict(targets=list(TARGETS), scenarios=["mixed"], workers=[1], users=[8],
                  duration=3.0, warmup=1.0, adapt_window=False),
    "default": {},
    "full": dict(targets=list(TARGETS), workers=[1, 2, 4, 8], duration=10.0, warmup=3.0, repeat=3),
    "tune": _tune_parts(),
    "servers": _servers_parts(),
}


def make_plan(preset: str = "default", **overrides: Any) -> list[Config]:
    """Every part of a preset, each with the overrides that are not None; validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}{closest(preset, PRESETS)}; "
                          f"choose from {', '.join(PRESETS)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    parts = PRESETS[preset]
    return [validate({**part, **given}) for part in (parts if isinstance(parts, list) else [parts])]


def make_config(preset: str = "default", **overrides: Any) -> Config:
    """Preset values, then every override that is not None; validated (a one-part preset)."""
    plan = make_plan(preset, **overrides)
    if len(plan) != 1:
        raise ConfigError(f"preset {preset!r} has {len(plan)} parts; it runs as a plan (make_plan)")
    return plan[0]


def plan_cells(plan: list[Config], cores: int | None = None) -> list[Cell]:
    """The cells of every part, in order, each once. Raw folder names cover what any part sweeps."""
    swept = tuple(dict.fromkeys(k for cfg in plan for k in cfg.swept()))
    seen: dict[tuple, Cell] = {}
    for cfg in plan:
        for cell in build_cells(cfg, cores, swept=swept):
            seen.setdefault(cell.key, cell)
    return list(seen.values())


@dataclass(frozen=True, eq=True)
class Cell:
    """One (cell, repeat) to measure. Knob values live in `knobs` (attribute access: cell.workers)."""

    target: str
    scenario: str
    knobs: Mapping[str, Any]
    repeat: int
    warmup_s: float
    duration_s: float
    ceiling_rps: float
    swept: tuple[str, ...] = field(default=(), compare=False)

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name != "knobs":
            values = self.__dict__.get("knobs", {})
            if name in values:
                return values[name]
        raise AttributeError(name)

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def foreign(self) -> bool:
        """Your own app (--app) or a running server (--url): no ceiling model, no known endpoints."""
        return bool(self.knobs.get("app_dir") or self.knobs.get("url"))

    def params(self) -> dict[str, Any]:
        """The parameter columns of this cell's row, in results.csv's order."""
        return {"target": self.target, "scenario": self.scenario,
                **{k.col: self.knobs[k.name] for k in knobs.CELL_KNOBS}, "repeat": self.repeat}

    @property
    def key(self) -> tuple:
        """Identity of a (cell, repeat) in results.csv, used by --resume: every parameter column."""
        return knobs.cell_key(self.params())

    @property
    def cell_id(self) -> str:
        """The raw folder name: target, scenario, workers, users, every other swept knob, repeat."""
        parts = [self.target, self.scenario, f"w{self.knobs['workers']}", f"u{self.knobs['users']}"]
        for k in knobs.SWEEP_KNOBS:
            if k.name in self.swept and k.name not in ("workers", "users") \
                    and self.knobs[k.name] is not None:
                parts.append(f"{k.token}{self.knobs[k.name]}")
        if not self.knobs["probe"]:
            parts.append("noprobe")
        name = "_".join(parts) + f"_r{self.repeat}"
        # import strings, URLs and paths (--app/--url) must not make folders of their own
        return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)

    def env(self) -> dict[str, str]:
        """The knobs as the environment variables every uvicorn worker reads at start."""
        out = {}
        for k in knobs.CELL_KNOBS:
            text = k.to_env(self.knobs[k.name]) if k.env else None
            if k.env and text is not None:
                out[k.env] = text
        return out


def window(duration: float, warmup: float, users: int, ceiling: float, adapt: bool) -> tuple[float, float]:
    """(warm-up, duration) for a cell.

    A closed loop of U users against a server doing X rps reaches steady state after about U / X
    seconds (every user has queued once); a p99 needs ≥ MIN_REQUESTS completions, counted at
    EXPECTED_EFFICIENCY of the ceiling since overheads keep real cells below it. Slow cells get a
    longer window, up to MAX_STRETCH × the asked one; the columns record what was used.
    """
    if not adapt or not math.isfinite(ceiling) or ceiling <= 0:
        return warmup, duration
    cycle = users / ceiling
    warm = min(max(warmup, 1.2 * cycle), warmup + MAX_STRETCH * duration)
    dur = min(max(duration, MIN_REQUESTS / (EXPECTED_EFFICIENCY * ceiling)), MAX_STRETCH * duration)
    return math.ceil(warm * 10) / 10, math.ceil(dur * 10) / 10  # never round a window down


def open_loop_duration(duration: float, rate: float, adapt: bool) -> float:
    """An open loop sends rate × duration requests: stretch the window until a p99 has 100 of them."""
    if not adapt:
        return duration
    return min(math.ceil(max(duration, MIN_REQUESTS / rate) * 10) / 10, MAX_STRETCH * duration)


def _work_items(cfg: Config) -> list[tuple[str, str, dict[str, Any]]]:
    """(target, scenario, settings the scenario needs) of the sweep: the built-in targets and
    scenarios, or your own app's paths (--app) / a running server's (--url)."""
    if cfg.app is None and cfg.url is None:
        return [(t, s, {}) for t in cfg.targets for s in cfg.scenarios]
    target = cfg.app if cfg.app is not None else cfg.url
    common = {"app_dir": cfg.app_dir, "url": cfg.url, "locustfile": cfg.locustfile, "setup": cfg.setup,
              "requests": cfg.requests, "python": cfg.python, "env_file": cfg.env_file, "cwd": cfg.cwd,
              "health_path": cfg.health_path or ("/_bench/health" if cfg.app is not None else "/health")}
    if cfg.paths and cfg.screen:  # the audit's screen: every path in one window
        return [(target, SCREEN, {**common, "screen": list(cfg.paths)})]
    if cfg.paths:
        return [(target, p, {**common, "path": p}) for p in cfg.paths]
    if cfg.locustfile:
        name = "locustfile:" + os.path.basename(cfg.locustfile).removesuffix(".py")
        return [(target, name, common)]
    return [(target, s, common) for s in cfg.scenarios]  # --url against `bench.py serve TARGET`


def db_model_args(target: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The db knobs as the ceiling model takes them (B: the pool a worker really gets)."""
    if values.get("db_queries") is None:
        return {}
    return {"db_queries": values["db_queries"], "db_ms": values["db_ms"],
            "db_pool": db_pool_max(target, values["db_driver"], values["db_pool"])}


def applies(knob: str, target: str) -> bool:
    """Whether a cell knob applies to a target's cells (--thread-tokens is --pool-size on thread-pool)."""
    return not (knob == "thread_tokens" and target == "thread-pool")


def build_cells(cfg: Config, cores: int | None = None, swept: tuple[str, ...] | None = None) -> list[Cell]:
    """repeats × targets × scenarios × every sweepable knob's values (pool sizes per target), in an
    order that groups a target's cells. Targets without a pool are not multiplied by pool sizes.

    Open-loop cells (rate > 0) have no users (0); --url cells have no known workers (0)."""
    cores = cores or cores_available()
    swept = cfg.swept() if swept is None else swept
    cells = []
    seen: set[tuple] = set()
    for repeat, (target, scenario, extra) in itertools.product(range(1, cfg.repeat + 1), _work_items(cfg)):
        pools = cfg.pool_sizes(target) if target in TARGETS else [None]
        # A knob of other scenarios (DB_POOL for io cells) neither multiplies the cells nor is set.
        lists = [[None] if k.scenarios and scenario not in k.scenarios or not applies(k.name, target)
                 else pools if k.per_target else getattr(cfg, k.name)
                 for k in knobs.SWEEP_KNOBS]
        for combo in itertools.product(*lists):
            values = dict(zip((k.name for k in knobs.SWEEP_KNOBS), combo, strict=True))
            for k in knobs.CELL_KNOBS:
                if not k.sweep:
                    values[k.name] = None if k.scenarios and scenario not in k.scenarios \
                        else getattr(cfg, k.name)
            if values["rate"]:
                values["users"] = 0
                values["max_in_flight"] = cfg.max_in_flight
            if cfg.url is not None:
                values["workers"] = 0  # nothing launched: the worker count is unknown
                values["server"] = None  # ... and so is the server
            if cfg.remote_load_workers:  # run-wide, but each cell's Locust master needs them
                values.update(remote_load_workers=cfg.remote_load_workers, master_bind=cfg.master_bind,
                              remote_wait=cfg.remote_wait)
            values.update(extra)
            try:
                ceiling = model.ceiling_rps(
                    target, scenario, workers=values["workers"], users=values["users"] or cfg.max_in_flight,
                    io_ms=values["io_ms"], cpu_ms=values["cpu_ms"], fanout=values["fanout"],
                    pool_size=values["pool_size"], cpu_kind=values["cpu_kind"], cores=cores,
                    http_connections=values["http_connections"], **db_model_args(target, values))
            except ValueError:  # a target without a model (your own app, one registered by a test)
                ceiling = math.nan
            if values["rate"]:
                warm, dur = cfg.warmup, open_loop_duration(cfg.duration, values["rate"], cfg.adapt_window)
            else:
                warm, dur = window(cfg.duration, cfg.warmup, values["users"], ceiling, cfg.adapt_window)
            cell = Cell(target=target, scenario=scenario, knobs=values, repeat=repeat, warmup_s=warm,
                        duration_s=dur, ceiling_rps=ceiling, swept=swept)
            if cell.key not in seen:  # open loop: one cell per rate, whatever --users says
                seen.add(cell.key)
                cells.append(cell)
    return cells
