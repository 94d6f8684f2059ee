"""The sweep as data: presets and flags → a validated Config → a list of Cells.

Validation happens here, before anything is launched, so bad input costs nothing.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace

from harness import model
from targets import CORE_TARGETS, TARGETS, default_pool_size

SCENARIOS: dict[str, str] = {
    "io": "I/O-bound: GET /io, FANOUT upstream calls of IO_MS each",
    "cpu": "CPU-bound: GET /cpu, CPU_MS of calibrated CPU work",
    "mixed": "mixed: GET /mixed, one upstream call then CPU_MS of work",
    "health": "framework overhead: closed-loop users on GET /health (probe on/off comparisons)",
}
LOOPS = ("uvloop", "asyncio")
CPU_KINDS = ("python", "native")
HTTP_CLIENTS = ("httpx", "aiohttp")
LAUNCHES = ("uvicorn", "reuseport")  # harness.launch's ways to start W workers

# Limits on what a sweep may ask for: beyond them a typo is likelier than intent.
LIMITS = {
    "workers": (1, 64), "users": (1, 2000), "duration": (1, 3600), "warmup": (0, 600),
    "io_ms": (0, 5000), "cpu_ms": (0, 1000), "fanout": (1, 16), "pool_size": (1, 1024),
    "repeat": (1, 100), "http_connections": (1, 10000),
}

# Measurement window sizing: enough completions for a p99, warm-up past one full queue cycle.
MIN_REQUESTS = 100
EXPECTED_EFFICIENCY = 0.8  # size the window as if the cell reaches 80% of its ceiling
MAX_STRETCH = 4.0  # never stretch a cell's window beyond this multiple of the asked duration


class ConfigError(ValueError):
    """Bad input: a one-line message for the user."""


@dataclass
class Config:
    targets: list[str] = field(default_factory=lambda: list(CORE_TARGETS))
    scenarios: list[str] = field(default_factory=lambda: ["io", "cpu", "mixed"])
    workers: list[int] = field(default_factory=lambda: [1, 2, 4])
    users: list[int] = field(default_factory=lambda: [32])
    duration: float = 5.0
    warmup: float = 2.0
    io_ms: int = 50
    cpu_ms: int = 20
    fanout: int = 3
    pool_size: int | None = None
    cpu_kind: str = "python"
    http_connections: int = 100
    http_client: str = "httpx"
    loop: str = "uvloop"
    repeat: int = 1
    probe: bool = True
    adapt_window: bool = True
    pin: bool = False
    launch: str = "uvicorn"

    def knobs(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    "smoke": dict(targets=list(TARGETS), scenarios=["mixed"], workers=[1], users=[8],
                  duration=3.0, warmup=1.0, adapt_window=False),
    "default": {},
    "full": dict(targets=list(TARGETS), workers=[1, 2, 4, 8], duration=10.0, warmup=3.0, repeat=3),
}


def _closest(name: str, choices) -> str:
    match = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check_names(kind: str, names: list[str], known) -> None:
    if not names:
        raise ConfigError(f"no {kind} given")
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown {kind[:-1]} {name!r}{_closest(name, known)}; "
                              f"choose from {', '.join(known)}")


def _check_range(name: str, value) -> None:
    lo, hi = LIMITS[name]
    if value is None:
        return
    if not lo <= value <= hi:
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"{flag} {value} is out of range: must be between {lo} and {hi}")


def validate(cfg: Config) -> Config:
    # Repeated values would run identical cells twice under one key: keep the first of each.
    for name in ("targets", "scenarios", "workers", "users"):
        values = getattr(cfg, name)
        if isinstance(values, list):
            setattr(cfg, name, list(dict.fromkeys(values)))
    _check_names("targets", cfg.targets, TARGETS)
    _check_names("scenarios", cfg.scenarios, SCENARIOS)
    if cfg.loop not in LOOPS:
        raise ConfigError(f"unknown loop {cfg.loop!r}{_closest(cfg.loop, LOOPS)}; choose uvloop or asyncio")
    if cfg.launch not in LAUNCHES:
        raise ConfigError(f"unknown launch {cfg.launch!r}{_closest(cfg.launch, LAUNCHES)}; "
                          "choose uvicorn or reuseport")
    if cfg.http_client not in HTTP_CLIENTS:
        raise ConfigError(f"unknown http client {cfg.http_client!r}; choose httpx or aiohttp")
    if cfg.cpu_kind not in CPU_KINDS:
        raise ConfigError(f"unknown cpu kind {cfg.cpu_kind!r}; choose python or native")
    for name in ("workers", "users"):
        values = getattr(cfg, name)
        if not values:
            raise ConfigError(f"--{name} needs at least one value")
        for v in values:
            _check_range(name, v)
    for name in ("duration", "warmup", "io_ms", "cpu_ms", "fanout", "pool_size", "repeat",
                 "http_connections"):
        _check_range(name, getattr(cfg, name))
    return cfg


def make_config(preset: str = "default", **overrides) -> Config:
    """Preset values, then every override that is not None; validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}{_closest(preset, PRESETS)}; "
                          f"choose from {', '.join(PRESETS)}")
    cfg = replace(Config(), **PRESETS[preset])
    known = {f.name for f in fields(Config)}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        if value is not None:
            setattr(cfg, key, value)
    return validate(cfg)


def cores_available() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class Cell:
    target: str
    scenario: str
    workers: int
    users: int
    loop: str
    pool_size: int | None
    io_ms: int
    cpu_ms: int
    fanout: int
    cpu_kind: str
    http_connections: int
    repeat: int
    warmup_s: float
    duration_s: float
    ceiling_rps: float
    probe: bool = True
    http_client: str = "httpx"
    launch: str = "uvicorn"

    @property
    def key(self) -> tuple:
        """Identity of a (cell, repeat) in results.csv, used by --resume."""
        return (self.target, self.scenario, self.workers, self.users, self.repeat)

    @property
    def cell_id(self) -> str:
        probe = "" if self.probe else "_noprobe"
        return f"{self.target}_{self.scenario}_w{self.workers}_u{self.users}{probe}_r{self.repeat}"

    def env(self) -> dict[str, str]:
        """The knobs as the environment variables every uvicorn worker reads at start."""
        env = {"IO_MS": str(self.io_ms), "FANOUT": str(self.fanout), "CPU_MS": str(self.cpu_ms),
               "CPU_KIND": self.cpu_kind, "HTTP_CONNECTIONS": str(self.http_connections),
               "HTTP_CLIENT": self.http_client,
               "PROBE": "1" if self.probe else "0"}
        if self.pool_size is not None:
            env["POOL_SIZE"] = str(self.pool_size)
        return env

    def params(self) -> dict:
        return {"target": self.target, "scenario": self.scenario, "workers": self.workers,
                "users": self.users, "loop": self.loop, "pool_size": self.pool_size,
                "io_ms": self.io_ms, "cpu_ms": self.cpu_ms, "fanout": self.fanout,
                "cpu_kind": self.cpu_kind, "http_client": self.http_client,
                "http_connections": self.http_connections, "launch": self.launch, "probe": self.probe,
                "repeat": self.repeat}


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


def build_cells(cfg: Config, cores: int | None = None) -> list[Cell]:
    """targets × scenarios × workers × users × repeats, in an order that groups a target's cells."""
    cores = cores or cores_available()
    cells = []
    for repeat, target, scenario, workers, users in itertools.product(
            range(1, cfg.repeat + 1), cfg.targets, cfg.scenarios, cfg.workers, cfg.users):
        pool = cfg.pool_size if cfg.pool_size is not None else default_pool_size(target)
        try:
            ceiling = model.ceiling_rps(
                target, scenario, workers=workers, users=users, io_ms=cfg.io_ms, cpu_ms=cfg.cpu_ms,
                fanout=cfg.fanout, pool_size=pool, cpu_kind=cfg.cpu_kind, cores=cores,
                http_connections=cfg.http_connections)
        except ValueError:  # a target without a model (e.g. one registered by a test)
            ceiling = math.nan
        warm, dur = window(cfg.duration, cfg.warmup, users, ceiling, cfg.adapt_window)
        cells.append(Cell(target, scenario, workers, users, cfg.loop, pool, cfg.io_ms, cfg.cpu_ms,
                          cfg.fanout, cfg.cpu_kind, cfg.http_connections, repeat, warm, dur, ceiling,
                          cfg.probe, cfg.http_client, cfg.launch))
    return cells
