"""The answer, per workload: which pattern and which sizes, ranked across targets under one SLO.

Built on recommend's rule (no second rule): recommend picks each target's configuration (the cheapest
within 5% of that target's best feasible throughput); this module puts the picks of one workload side
by side. A *workload* is one recommend group without its target: the scenario and every knob that is
not a size (users, io_ms, rate, ...), so the targets compete on the same work.

- The SLO has two sides: the route's own p99, and its neighbours' (/health p99, or its max where too
  few probes stand behind a p99: recommend.health_reason). A pattern that stalls its neighbours does
  not meet it; `--slo-health-p99 0` ranks on the route alone.
- The winner is the best throughput, unless other picks are inside its noise: then the cheapest of
  them wins (harness.answer.cost: fewest processes, then least memory), and the verdict says why. A
  run cannot decide only on a true tie: same cost and /health alike, inside the noise.
- Losers are named with what they lose by: the throughput ratio, and /health when the pick stalls the
  loop (its /health latency reaches half the work endpoint's p50, and at least STALL_MS).
- The ASGI server is a knob of recommend's group, not of the workload: when a run swept
  servers (or ran one other than uvicorn), each target under each server is one entry, so the winner
  names its server ("correct-async under granian") and the table gains a server column.

Why one module over 300 lines: the ranking and the ways it is read (terminal table, answer.csv, the
report's first section) share the entry and workload types; the rule itself stays recommend's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.answer import aggregate, cost, recommend, significance

CSV_NAME = "answer.csv"
STALL_MS = 50.0  # /health slower than this (and than half the work p50) means the loop stalls neighbours
STALL_FRACTION = 0.5


@dataclass
class Entry:
    """One target's pick (or, when none meets the SLO, its closest cell) for one workload."""

    target: str
    cell: pd.Series | None
    feasible: bool
    reason: str = ""  # why no configuration of this target meets the SLO
    server: str = ""  # the ASGI server, when the run names one (see `named_servers`)

    @property
    def name(self) -> str:
        return f"{self.target} under {self.server}" if self.server else self.target


@dataclass
class Workload:
    key: dict[str, object]  # scenario and the non-size knobs
    entries: list[Entry]  # feasible picks by throughput (best first), then the others
    verdict: str = ""  # one line: the winner, or why the run cannot decide
    losses: list[str] = field(default_factory=list)  # "thread-pool: 0.58× the rps"
    by_server: bool = False  # entries are target × server: the table shows the server

    @property
    def winner(self) -> Entry | None:
        return self.entries[0] if self.entries and self.entries[0].feasible else None

    @property
    def decided(self) -> bool:
        return self.verdict.startswith("winner")


# ------------------------------------------------------------------------------------ the figures


def _f(v: object, digits: int = 0) -> str:
    return recommend._fmt(v, digits)


def _is_num(v: object) -> bool:
    try:
        return not math.isnan(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def ms_text(ms: object) -> str:
    """1234 → '1.2 s', 711 → '711 ms'."""
    if not _is_num(ms):
        return "–"
    value = float(ms)  # type: ignore[arg-type]
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def health_text(cell: pd.Series) -> str:
    """/health p99, or its max when too few samples stand behind a p99 (a max is called a max)."""
    samples = cell.get("health_min_samples")
    if _is_num(cell.get("health_p99_ms")):  # collect leaves it empty below 100 samples
        return ms_text(cell["health_p99_ms"])
    if _is_num(cell.get("health_max_ms")):  # no p99 (too few probes, or failed ones): say it is a max
        count = f"n={_f(samples)}, " if _is_num(samples) else ""
        return f"max {ms_text(cell['health_max_ms'])} ({count}too few for a p99)"
    return "–"


def health_ms(cell: pd.Series) -> float:
    """The /health figure the stall test reads: p99, else the max."""
    for col in ("health_p99_ms", "health_max_ms"):
        if _is_num(cell.get(col)):
            return float(cell[col])
    return math.nan


def stalls_neighbours(cell: pd.Series) -> bool:
    health = health_ms(cell)
    if math.isnan(health) or health < STALL_MS:
        return False
    p50 = cell.get("p50_ms")
    return not _is_num(p50) or health >= STALL_FRACTION * float(p50)


def rps_text(cell: pd.Series) -> str:
    if cell["repeats"] >= 2 and _is_num(cell.get("rps_lo")):
        return f"{_f(cell['rps'], 1)} ({_f(cell['rps_lo'], 1)}–{_f(cell['rps_hi'], 1)})"
    return f"{_f(cell['rps'], 1)} (n=1)" if cell["repeats"] == 1 else _f(cell["rps"], 1)


def pool_text(cell: pd.Series) -> str:
    if _is_num(cell.get("pool_size")) and recommend.has_pool(str(cell["target"])):
        return _f(cell["pool_size"])
    return "–"


def sizes_text(cell: pd.Series) -> str:
    parts = [f"workers={_f(cell['workers'])}"] if _is_num(cell.get("workers")) else []
    if pool_text(cell) != "–":
        parts.append(f"pool={pool_text(cell)}")
    if _is_num(cell.get("db_pool")):
        parts.append(f"db_pool={_f(cell['db_pool'])}")
    if _is_num(cell.get("rate")) and float(cell["rate"]) > 0:
        parts.append(f"at {_f(cell['rate'])}/s")
    return " ".join(parts)


# -------------------------------------------------------------------------------------- the rule


def _server_of(result: recommend.GroupResult) -> str:
    server = result.key.get("server")
    return "" if server is None or pd.isna(server) else str(server)


def named_servers(results: list[recommend.GroupResult]) -> bool:
    """Entries name their server when the run swept servers or ran one that is not uvicorn (an old
    file, or a --url run, names none: the answer reads as before)."""
    found = {_server_of(r) for r in results} - {""}
    return bool(found) and found != {"uvicorn"}


def _entry(result: recommend.GroupResult, by_server: bool = False) -> Entry:
    target, server = str(result.key.get("target")), _server_of(result) if by_server else ""
    if result.chosen is not None:
        return Entry(target, result.chosen, True, server=server)
    reason = result.closest["reason"] if result.closest is not None else "no cell has a measured p99"
    return Entry(target, result.closest, False, str(reason), server=server)


def _loss(winner: pd.Series, entry: Entry) -> str:
    if not entry.feasible or entry.cell is None:
        return f"{entry.name}: no configuration meets the SLO ({entry.reason})"
    cell = entry.cell
    parts = [f"{cell['rps'] / winner['rps']:.2f}× the rps"]
    if cell["rps"] > winner["rps"]:  # faster but lost on cost: say what it costs
        parts.append(f"within noise, at {cost.cost_text(cell)}")
    if stalls_neighbours(cell) and not stalls_neighbours(winner):
        parts.append(f"/health {health_text(cell)}, stalls neighbours")
    return f"{entry.name}: " + "; ".join(parts)


def _by_cost(best: Entry, near: list[Entry]) -> tuple[Entry | None, str]:
    """The cheapest of the entries within noise of the best, and why; a true tie names no one."""
    ranked = sorted(near, key=lambda e: cost.cost_key(e.cell))
    first, second = ranked[0], ranked[1]
    a, b = first.cell, second.cell
    assert a is not None and b is not None and best.cell is not None
    if not cost.same_cost(a, b):
        if first is best:
            return first, (f"the cheapest of those within noise: {cost.cost_text(a)}, against "
                           f"{cost.cost_text(b)} for {second.name} ({cost.noise(a, b).why})")
        return first, (f"within noise of the best ({cost.noise(best.cell, a).why}) at {cost.cost_text(a)}, "
                       f"against {cost.cost_text(best.cell)} for {best.name}")
    if not cost.health_alike(a, b):
        low, high = (first, second) if cost.cost_key(a)[2] <= cost.cost_key(b)[2] else (second, first)
        return low, (f"within noise ({cost.noise(best.cell, second.cell if low is best else low.cell).why}) "
                     f"at the same cost ({cost.cost_text(a)}), and /health {health_text(low.cell)} "
                     f"against {health_text(high.cell)} for {high.name}")
    costs = (f"{cost.cost_text(a)} each" if cost.cost_text(a) == cost.cost_text(b)
             else f"{cost.cost_text(a)} against {cost.cost_text(b)}")
    return None, (f"a true tie: throughput within noise ({cost.noise(a, b).why}), the same cost "
                  f"({costs}), /health alike ({health_text(a)} against {health_text(b)})")


def _near(best: Entry, feasible: list[Entry]) -> list[Entry]:
    return [best, *(e for e in feasible[1:] if cost.noise(best.cell, e.cell).inside)]


def decide(key: dict[str, object], results: list[recommend.GroupResult], by_server: bool = False) -> Workload:
    """Rank one workload's picks (one per target, or per target and server) and say who wins, or why
    this run cannot tell."""
    entries = [_entry(r, by_server) for r in results]
    feasible = sorted((e for e in entries if e.feasible), key=lambda e: -float(e.cell["rps"]))  # type: ignore[index]
    others = [e for e in entries if not e.feasible]
    work = Workload(key, [*feasible, *others], by_server=by_server)
    if not feasible:
        work.verdict = "cannot decide: no configuration of any pattern meets the SLO"
        work.losses = [_loss(pd.Series(dtype=object), e) for e in others]
        return work
    best = feasible[0]
    near = _near(best, feasible)
    chosen, why = (best, "") if len(near) == 1 else _by_cost(best, near)
    if chosen is None:
        one = any(int(e.cell["repeats"]) < cost.TEST_REPEATS for e in near)  # type: ignore[index]
        more = (f"; more repeats (--repeat {significance.RECOMMENDED_REPEATS}) may part them" if one else "")
        names = " and ".join(f"{e.name} ({sizes_text(e.cell)})" for e in near)
        work.verdict = f"cannot decide between {names}: {why}{more}"
        work.losses = [_loss(best.cell, e) for e in work.entries[1:]]
        return work
    cell = chosen.cell
    assert cell is not None
    work.entries = [chosen, *(e for e in work.entries if e is not chosen)]
    work.verdict = f"winner: {chosen.name} with {sizes_text(cell)}, {_f(cell['rps'], 1)} rps"
    if why:
        work.verdict += f": {why}"
    if stalls_neighbours(cell):  # with the neighbour SLO off the pick may block its loop: say so
        work.verdict += f" (but its /health {health_text(cell)}: it stalls neighbours)"
    work.losses = [_loss(cell, e) for e in work.entries[1:]]
    return work


def hinge_cells(work: Workload) -> list[pd.Series]:
    """The cells the answer hinges on at too few repeats for the permutation test: the best throughput
    and the cheaper pick inside its noise (or the two of a true tie). Empty when the answer does not
    depend on the noise (one candidate inside it, or the best is also the cheapest)."""
    feasible = sorted((e for e in work.entries if e.feasible), key=lambda e: -float(e.cell["rps"]))  # type: ignore[index]
    if len(feasible) < 2:
        return []
    near = _near(feasible[0], feasible)
    if len(near) < 2 or (work.decided and work.entries[0] is feasible[0]):
        return []
    pair = [feasible[0], work.entries[0]] if work.decided else sorted(
        near, key=lambda e: cost.cost_key(e.cell))[:2]
    cells = [e.cell for e in pair if e.cell is not None]
    return cells if any(int(c["repeats"]) < cost.TEST_REPEATS for c in cells) else []


# Knobs of recommend's group that an entry carries instead of the workload: the targets (and the
# servers) compete on the same work.
ENTRY_COLUMNS = ("target", "server")


def workload_columns(results: list[recommend.GroupResult]) -> list[str]:
    return [c for c in (results[0].key if results else {}) if c not in ENTRY_COLUMNS]


def answer(df: pd.DataFrame, slo_p99_ms: float = recommend.DEFAULT_SLO_P99_MS,
           max_fail_ratio: float = recommend.DEFAULT_MAX_FAIL_RATIO,
           slo_health_ms: float = recommend.DEFAULT_SLO_HEALTH_P99_MS) -> list[Workload]:
    """One Workload per scenario × non-size knobs, from recommend's groups of a results frame."""
    return from_groups(recommend.recommend(df, slo_p99_ms, max_fail_ratio, slo_health_ms))


def from_groups(results: list[recommend.GroupResult]) -> list[Workload]:
    cols, by_server = workload_columns(results), named_servers(results)
    by_key: dict[tuple, list[recommend.GroupResult]] = {}
    for r in results:
        by_key.setdefault(tuple(_f(r.key[c]) for c in cols), []).append(r)
    return [decide({c: same[0].key[c] for c in cols}, same, by_server) for same in by_key.values()]


# ------------------------------------------------------------------------------------ the output

TABLE_HEADER = ["rank", "pattern", "workers", "pool", "rps (interval)", "p99", "/health p99", "memory",
                "bound by", "meets SLO"]
SERVER_HEADER = "server"  # after "pattern", in a workload whose entries name their server


def table_header(work: Workload) -> list[str]:
    return [*TABLE_HEADER[:2], SERVER_HEADER, *TABLE_HEADER[2:]] if work.by_server else list(TABLE_HEADER)


def workload_title(work: Workload, distinguishing: list[str]) -> str:
    extra = [f"{c}={_f(work.key[c])}" for c in distinguishing
             if c != "scenario" and not pd.isna(work.key[c])]
    return " · ".join([str(work.key.get("scenario")), *([" ".join(extra)] if extra else [])])


def distinguishing(workloads: list[Workload]) -> list[str]:
    """Workload knobs that differ between two workloads of one scenario (the rest go unsaid)."""
    by_scenario: dict[object, list[Workload]] = {}
    for w in workloads:
        by_scenario.setdefault(w.key.get("scenario"), []).append(w)
    cols = list(workloads[0].key) if workloads else []
    return [c for c in cols if any(len({_f(w.key[c]) for w in same}) > 1 for same in by_scenario.values())]


def rows(work: Workload) -> list[list[str]]:
    """The ranked table's rows, in table_header(work)'s columns."""
    out = []
    for i, e in enumerate(work.entries, 1):
        head = [str(i) if e.feasible else "–", e.target, *([e.server or "–"] if work.by_server else [])]
        c = e.cell
        if c is None:
            out.append([*head, "–", "–", "–", "–", "–", "–", "–", f"no: {e.reason}"])
            continue
        mem = f"{_f(c.get(recommend.MEMORY))} MB" if _is_num(c.get(recommend.MEMORY)) else "–"
        out.append([*head, _f(c.get("workers")), pool_text(c), rps_text(c),
                    ms_text(c.get("p99_ms")), health_text(c), mem, str(c.get("bound_by") or "–"),
                    "yes" if e.feasible else f"no (closest): {e.reason}"])
    return out


def _aligned(header: list[str], body: list[list[str]], indent: str) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    return [indent + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *body]]


def text(workloads: list[Workload], slo_p99_ms: float, max_fail_ratio: float, *, full: bool = True,
         slo_health_ms: float = recommend.DEFAULT_SLO_HEALTH_P99_MS) -> str:
    """The terminal answer: per workload one verdict line (and, when `full`, the ranked table)."""
    lines = [f"The answer, per workload ({recommend.slo_text(slo_p99_ms, max_fail_ratio, slo_health_ms)}; "
             "each pattern at recommend's pick: its cheapest configuration within 5% of its best feasible "
             f"throughput; {cost.RULE_TEXT})"]
    if not workloads:
        return lines[0] + "\n  no measured cells"
    named = distinguishing(workloads)
    for w in workloads:
        lines.append(f"- {workload_title(w, named)}: {w.verdict}")
        if w.losses:
            lines.append("    losers: " + "; ".join(w.losses))
        if full:
            lines.extend(_aligned(table_header(w), rows(w), "    "))
    return "\n".join(lines)


def to_frame(workloads: list[Workload], slo_p99_ms: float, max_fail_ratio: float,
             slo_health_ms: float = recommend.DEFAULT_SLO_HEALTH_P99_MS) -> pd.DataFrame:
    named = distinguishing(workloads)
    header = table_header(workloads[0]) if workloads else list(TABLE_HEADER)  # one run: all alike
    out = []
    for w in workloads:
        for r in rows(w):
            out.append({"workload": workload_title(w, named), "verdict": w.verdict, "decided": w.decided,
                        **dict(zip(table_header(w), r, strict=True)), "slo_p99_ms": slo_p99_ms,
                        "max_fail_ratio": max_fail_ratio, "slo_health_p99_ms": slo_health_ms})
    return pd.DataFrame(out, columns=["workload", "verdict", "decided", *header, "slo_p99_ms",
                                      "max_fail_ratio", "slo_health_p99_ms"])


def run(run_dir: Path, slo_p99_ms: float = recommend.DEFAULT_SLO_P99_MS,
        max_fail_ratio: float = recommend.DEFAULT_MAX_FAIL_RATIO, *, full: bool = True,
        say: Callable[[str], None] = print,
        slo_health_ms: float = recommend.DEFAULT_SLO_HEALTH_P99_MS) -> list[Workload]:
    """`bench.py answer DIR`: print the answer and write run_dir/answer.csv."""
    if not (Path(run_dir) / "results.csv").is_file():
        raise recommend.RecommendError(f"{run_dir}/results.csv not found")
    workloads = answer(aggregate.load_results(run_dir), slo_p99_ms, max_fail_ratio, slo_health_ms)
    say(text(workloads, slo_p99_ms, max_fail_ratio, full=full, slo_health_ms=slo_health_ms))
    path = Path(run_dir) / CSV_NAME
    to_frame(workloads, slo_p99_ms, max_fail_ratio, slo_health_ms).to_csv(path, index=False)
    say(f"answer: {path}")
    return workloads
