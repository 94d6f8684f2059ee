"""Which size to run: the cheapest configuration that meets a p99 SLO at (nearly) the best throughput.

Reads only a run folder's results.csv. The rule (no curve fitting: with 3–8 noisy points USL or knee
fits are ill-conditioned):

1. A *group* is one target × scenario × every knob that is not a size (users, io_ms, loop, ...).
   Inside a group the cells differ only in their sizes (COST_KNOBS: workers, pool, connections).
2. The feasible set is the group's valid cells, none of whose repeats failed, with p99 ≤ SLO and
   fail_ratio ≤ the allowed failure ratio.
3. X* is the best feasible throughput (median over repeats).
4. A candidate is *near the best* when its throughput is within 5% of X*, or, when both have
   repeats, when its repeat interval reaches X*'s. That overlap is a noise band, not a test
   (harness.answer.significance is the test), so the output says how many repeats it rests on.
5. The recommendation is the cheapest near-best candidate: fewest workers, then the smallest pool,
   then the fewest HTTP connections, then the least memory (`target_rss_mb`, when measured).

Little's law cross-checks the pick: requests in flight = X × mean latency, against the pool's slots.

Why one module over 300 lines: the rule, its candidates table, Little's law cross-check and its
report are read by answer, html_report and the terminal alike; each step is a short function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.answer import aggregate
from harness.data import schema

DEFAULT_SLO_P99_MS = 1000.0
DEFAULT_MAX_FAIL_RATIO = 0.01
NEAR_BEST = 0.95  # within 5% of X*
# Size knobs, cheapest-first. Only those present in schema.PARAM_COLUMNS are used, so a knob added
# later (a database pool, say) joins by being listed here; every other parameter defines the group.
COST_KNOBS = ("workers", "pool_size", "http_connections", "db_pool")
MEMORY = "target_rss_mb"  # measured cost, the last tie-breaker (absent from older results)
MEAN_LATENCY = "mean_ms"  # used for Little's law when a run records it
CSV_NAME = "recommend.csv"


class RecommendError(ValueError):
    """Bad input to recommend (one-line reason)."""


# ----------------------------------------------------------------------------------- the cells


def _with_columns(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Columns a results file predates are empty (NaN), not an error."""
    missing = [c for c in columns if c not in df.columns]
    return df.assign(**dict.fromkeys(missing, np.nan)) if missing else df


def cost_knobs() -> list[str]:
    return [k for k in COST_KNOBS if k in schema.PARAM_COLUMNS]


def cell_columns() -> list[str]:
    return [c for c in schema.PARAM_COLUMNS if c != "repeat"]


# The offered load of an open loop: cells at different rates share a group, so X* is the highest
# rate served with p99 within the SLO (a rate sweep finds each configuration's sustainable rate).
LOAD_KNOBS = ("rate",)


def group_columns() -> list[str]:
    costs = set(cost_knobs())
    return [c for c in cell_columns() if c not in costs and c not in LOAD_KNOBS]


def cell_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: aggregate.summarize plus mean fail_ratio, median memory and mean latency."""
    df = _with_columns(df, [*schema.COLUMNS, MEMORY, MEAN_LATENCY])
    summary = aggregate.summarize(df)
    keys = [c for c in cell_columns() if c in summary.columns]
    ok = df[df["status"] == "ok"]
    aggs = {"fail_ratio": ("fail_ratio", "mean"), "mean_ms": (MEAN_LATENCY, "median")}
    if MEMORY not in summary.columns:  # summarize carries the memory median itself (schema ≥ 2)
        aggs[MEMORY] = (MEMORY, "median")
    extra = ok.groupby(keys, dropna=False, sort=False).agg(**aggs).reset_index()
    cells = summary.merge(extra, on=keys, how="left")  # pandas matches NaN keys with NaN keys
    return _with_columns(cells, cell_columns())


# ------------------------------------------------------------------------------------- the rule


def _fmt(v: object, digits: int = 1) -> str:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "–"
    return f"{f:.{digits}f}" if f != round(f) or digits == 0 else f"{f:.0f}"


def infeasible_reason(cell: pd.Series, slo_p99_ms: float, max_fail_ratio: float) -> str:
    """Why a cell is not feasible ("" when it is)."""
    if cell["repeats"] == 0:
        return f"failed: {cell['error']}" if cell["error"] else "no successful repeat"
    if cell["failed_repeats"] > 0:
        return f"{cell['failed_repeats']} of {cell['failed_repeats'] + cell['repeats']} repeats failed"
    if not cell["valid"]:
        return f"invalid: {cell['invalid_reason']}"
    bound = cell.get("p99_lower_ms")
    if bound is not None and pd.notna(bound):  # a repeat's failures reached its p99: it is only a bound
        fail = f", {cell['fail_ratio']:.1%} failed" if pd.notna(cell["fail_ratio"]) else ""
        return f"p99 > {_fmt(bound)} ms (failures reach the p99{fail})"
    if pd.isna(cell["p99_ms"]):
        return "p99 unknown (too few requests)"
    if cell["p99_ms"] > slo_p99_ms:
        return f"p99 {_fmt(cell['p99_ms'])} ms > SLO {_fmt(slo_p99_ms)} ms"
    if pd.notna(cell["fail_ratio"]) and cell["fail_ratio"] > max_fail_ratio:
        return f"failures {cell['fail_ratio']:.1%} > {max_fail_ratio:.1%}"
    return ""


def cheapest_first(cells: pd.DataFrame) -> pd.DataFrame:
    """Fewest workers, then smallest pool, then fewest connections, then least memory.

    A size that is empty (a target without a pool) sorts as the cheapest; unmeasured memory last.
    """
    order = [k for k in cost_knobs() if k in cells.columns]
    keyed = cells.assign(**{f"_sort_{k}": cells[k].astype("float64").fillna(-1.0) for k in order})
    by = [f"_sort_{k}" for k in order] + [MEMORY, "rps"]
    keyed = keyed.sort_values(by, ascending=[True] * (len(by) - 1) + [False], na_position="last",
                              kind="stable")
    return keyed.drop(columns=[f"_sort_{k}" for k in order])


def _overlaps(cell: pd.Series, best: pd.Series) -> bool:
    """Repeat intervals touch: only meaningful when both cells have repeats."""
    if cell["repeats"] < 2 or best["repeats"] < 2:
        return False
    return bool(cell["rps_hi"] >= best["rps_lo"])


def _interval_kind(cell: pd.Series) -> str:
    """What a cell's rps interval is (harness.answer.aggregate): a 95% interval from 6 repeats, else
    the min–max range."""
    return "95% intervals" if cell.get("interval") == "95%" else "min–max ranges"


def overlap_text(cell: pd.Series, best: pd.Series) -> str:
    """What an "as good by overlap" call rests on: `3 vs 5 repeats, min–max ranges`."""
    kinds = dict.fromkeys([_interval_kind(cell), _interval_kind(best)])
    return f"{int(cell['repeats'])} vs {int(best['repeats'])} repeats, {' and '.join(kinds)}"


def has_pool(target: str) -> bool:
    """Whether the target's POOL_SIZE means anything (thread-pool yes, correct-async no)."""
    import targets

    record = targets.TARGETS.get(target)
    kind = getattr(record, "pool_kind", None)
    if kind is not None:
        return str(kind) not in ("none", "")
    defaults = getattr(targets, "POOL_DEFAULTS", {})
    return target not in defaults or defaults[target] is not None


@dataclass
class LittleCheck:
    """Requests in flight (X × mean latency) against the slots a pool offers."""

    rps: float
    mean_s: float
    mean_source: str  # "mean_ms" or "U/X" (closed loop: every user always has a request out)
    in_flight: float
    slots: float | None  # workers × pool_size, None when the target has no pool

    def text(self) -> str:
        head = (f"Little's law: in flight = X × R = {self.rps:.1f} rps × {self.mean_s * 1000:.0f} ms"
                f" = {self.in_flight:.1f}")
        if self.mean_source != "mean_ms":
            head += f" (R = {self.mean_source} of the closed loop: results.csv has no mean latency)"
        if self.slots is None:
            return head + "; this target has no pool to compare it with."
        if self.in_flight > self.slots * 1.05:
            return (head + f" > {self.slots:g} pool slots: requests queue for a slot, so the pool "
                    "is the limit and its wait is in the latency.")
        idle = self.slots - self.in_flight
        tail = "" if idle < 0.5 else f"; about {idle:.0f} slot(s) sit idle"
        return head + f" ≤ {self.slots:g} pool slots: every request finds a slot{tail}."


def little_check(cell: pd.Series) -> LittleCheck | None:
    rps = float(cell["rps"])
    if not rps > 0:
        return None
    if pd.notna(cell.get("mean_ms")):
        mean_s, source = float(cell["mean_ms"]) / 1000, "mean_ms"
    elif pd.notna(cell.get("users")) and cell["users"] > 0:  # (an open loop has no users)
        # Closed loop with no think time: each user always has one request outstanding.
        mean_s, source = float(cell["users"]) / rps, "U/X"
    else:
        return None
    slots = None
    if pd.notna(cell.get("pool_size")) and has_pool(str(cell["target"])):
        workers = float(cell["workers"]) if pd.notna(cell.get("workers")) else 1.0
        slots = workers * float(cell["pool_size"])
    return LittleCheck(rps, mean_s, source, rps * mean_s, slots)


@dataclass
class GroupResult:
    key: dict[str, object]
    cells: pd.DataFrame  # cheapest first, with columns feasible, reason, near_best, role
    chosen: pd.Series | None
    best: pd.Series | None
    closest: pd.Series | None
    why: list[str] = field(default_factory=list)


def _size_label(cell: pd.Series, knobs: list[str]) -> str:
    parts = [f"{k}={_fmt(cell[k], 0)}" for k in knobs]
    if pd.notna(cell.get("rate")) and cell["rate"] > 0:
        parts.append(f"at rate={_fmt(cell['rate'], 0)}/s")
    return " ".join(parts) if parts else "the only configuration"


def varying_sizes(cells: pd.DataFrame) -> list[str]:
    """The size knobs that take more than one value among these cells (every set one if none do)."""
    knobs = [k for k in cost_knobs() if k in cells.columns]
    varying = [k for k in knobs if cells[k].nunique(dropna=False) > 1]
    return varying or [k for k in knobs if cells[k].notna().any()]


def _closest(cells: pd.DataFrame, slo_p99_ms: float, max_fail_ratio: float) -> pd.Series | None:
    """The measured cell nearest to meeting the SLO: smallest relative excess, valid cells first."""
    measured = cells[(cells["repeats"] > 0) & cells["p99_ms"].notna()]
    if measured.empty:
        return None
    fail = measured["fail_ratio"].fillna(0.0)
    excess = (measured["p99_ms"] / slo_p99_ms - 1).clip(lower=0) \
        + ((fail - max_fail_ratio) / max(max_fail_ratio, 0.01)).clip(lower=0)
    ranked = measured.assign(_excess=excess, _invalid=~measured["valid"], _neg_rps=-measured["rps"])
    ranked = ranked.sort_values(["_invalid", "_excess", "_neg_rps"], kind="stable")
    return ranked.iloc[0].drop(["_excess", "_invalid", "_neg_rps"])


def decide_group(cells: pd.DataFrame, slo_p99_ms: float, max_fail_ratio: float) -> GroupResult:
    """Apply the SLO rule to one group's cells."""
    cells = cheapest_first(cells).reset_index(drop=True)
    cells["reason"] = [infeasible_reason(c, slo_p99_ms, max_fail_ratio) for _, c in cells.iterrows()]
    cells["feasible"] = cells["reason"] == ""
    cells["near_best"] = False
    cells["role"] = np.where(cells["feasible"], "feasible", "infeasible")
    key = {c: cells[c].iloc[0] for c in group_columns() if c in cells.columns}
    sizes = varying_sizes(cells)
    feasible = cells[cells["feasible"]]
    if feasible.empty:
        closest = _closest(cells, slo_p99_ms, max_fail_ratio)
        why = ["no configuration meets the SLO"]
        if closest is not None:
            cells.loc[closest.name, "role"] = "closest"
            why.append(f"closest: {_size_label(closest, sizes)} at {_fmt(closest['rps'])} rps, which misses "
                       f"it by {closest['reason']}")
        else:
            why.append("no cell has a measured p99 to call closest (too few requests, or every repeat "
                       "failed)")
        return GroupResult(key, cells, None, None, closest, why)

    best = feasible.loc[feasible["rps"].idxmax()]
    x_star = float(best["rps"])
    near = feasible["rps"].ge(NEAR_BEST * x_star) | feasible.apply(_overlaps, axis=1, best=best)
    cells.loc[near[near].index, "near_best"] = True
    chosen = cells.loc[near[near].index[0]]  # cells are cheapest first
    cells.loc[best.name, "role"] = "best"
    cells.loc[chosen.name, "role"] = "chosen"
    why = [_why_chosen(cells, chosen, best, sizes)]
    check = little_check(chosen)
    if check is not None:
        why.append(check.text())
    return GroupResult(key, cells, chosen, best, None, why)


def _why_chosen(cells: pd.DataFrame, chosen: pd.Series, best: pd.Series, sizes: list[str]) -> str:
    x_star = float(best["rps"])
    label = _size_label(chosen, sizes)
    if chosen.name == best.name:
        text = f"{label} has the best feasible throughput, {_fmt(x_star)} rps"
    elif chosen["rps"] >= NEAR_BEST * x_star:
        text = (f"{label}: {_fmt(chosen['rps'])} rps is within 5% of the best, {_fmt(x_star)} rps at "
                f"{_size_label(best, sizes)} ({chosen['rps'] / x_star:.0%} of it), and it is cheaper")
    else:  # as good only because the repeats cannot tell them apart: say on how many repeats
        text = (f"{label}: {_fmt(chosen['rps'])} rps, {chosen['rps'] / x_star:.0%} of the best, "
                f"{_fmt(x_star)} rps at {_size_label(best, sizes)}, but its repeat interval overlaps the "
                f"best's ({overlap_text(chosen, best)}), and it is cheaper")
    cheaper = cells.iloc[: int(chosen.name)]
    rejected = []
    for _, c in cheaper.iterrows():
        if c["feasible"]:
            rejected.append(f"{_size_label(c, sizes)} reaches only {c['rps'] / x_star:.0%} of the best")
        else:
            rejected.append(f"{_size_label(c, sizes)}: {c['reason']}")
    if rejected:
        text += ". Cheaper ones lose: " + "; ".join(rejected)
    return text + "."


def recommend(df: pd.DataFrame, slo_p99_ms: float = DEFAULT_SLO_P99_MS,
              max_fail_ratio: float = DEFAULT_MAX_FAIL_RATIO) -> list[GroupResult]:
    """The SLO rule applied to every group of a results frame (see the module docstring)."""
    if not slo_p99_ms > 0:
        raise RecommendError(f"--slo-p99 must be > 0 ms, got {slo_p99_ms:g}")
    if not 0 <= max_fail_ratio <= 1:
        raise RecommendError(f"--max-fail-ratio must be in [0, 1], got {max_fail_ratio:g}")
    cells = cell_table(df)
    groups = [c for c in group_columns() if c in cells.columns]
    out = []
    for _, group in cells.groupby(groups, dropna=False, sort=True):
        out.append(decide_group(group, slo_p99_ms, max_fail_ratio))
    return out


# ------------------------------------------------------------------------------------ the output


def group_title(result: GroupResult, distinguishing: list[str]) -> str:
    key = result.key
    extra = [f"{c}={_fmt(key[c], 0)}" for c in distinguishing
             if c not in ("target", "scenario") and not pd.isna(key[c])]  # a knob that does not apply
    parts = [str(key.get("target")), str(key.get("scenario"))]
    return " · ".join([*parts, " ".join(extra)] if extra else parts)


def distinguishing_columns(results: list[GroupResult]) -> list[str]:
    """Group knobs that differ between groups of one target and scenario (the others are the same
    for all of them, or say which scenario it is, or do not apply: not worth printing)."""
    if not results:
        return []
    cols = list(results[0].key)
    by_name: dict[tuple, list[GroupResult]] = {}
    for r in results:
        by_name.setdefault((r.key.get("target"), r.key.get("scenario")), []).append(r)
    return [c for c in cols if any(len({_fmt(r.key[c], 0) for r in same}) > 1 for same in by_name.values())]


def candidates_table(result: GroupResult) -> str:
    cells = result.cells
    sizes = varying_sizes(cells)
    show_mem = cells[MEMORY].notna().any()
    header = [*sizes, "rps", "rps range", "p99 ms", "fail", *(["rss MB"] if show_mem else []), "verdict"]
    rows = []
    best_rps = float(result.best["rps"]) if result.best is not None else math.nan
    for _, c in cells.iterrows():
        rng = (f"{_fmt(c['rps_lo'])}–{_fmt(c['rps_hi'])}" if c["repeats"] >= 2 else "")
        if c["role"] in ("chosen", "best") or c["feasible"]:
            verdict = {"chosen": "← chosen", "best": "best (X*)"}.get(c["role"], "")
            if c["role"] == "chosen" and c.name == (result.best.name if result.best is not None else -1):
                verdict = "← chosen (X*)"
            near = ""
            if c["near_best"] and c["role"] != "best" and result.best is not None:
                near = (" (near)" if c["rps"] >= NEAR_BEST * best_rps
                        else f" (near: intervals overlap, {overlap_text(c, result.best)})")
            if verdict == "← chosen":
                verdict += near.replace(" (near)", "")
            elif not verdict:
                verdict = f"feasible, {c['rps'] / best_rps:.0%} of X*" + near
        else:
            verdict = ("closest: " if c["role"] == "closest" else "") + c["reason"]
        fail = "" if pd.isna(c["fail_ratio"]) else f"{c['fail_ratio']:.1%}"
        rows.append([*(_fmt(c[k], 0) for k in sizes), _fmt(c["rps"]), rng, _fmt(c["p99_ms"]), fail,
                     *([_fmt(c[MEMORY], 0)] if show_mem else []), verdict])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join("    " + line for line in lines)


def slo_text(slo_p99_ms: float, max_fail_ratio: float) -> str:
    return f"SLO: p99 ≤ {_fmt(slo_p99_ms)} ms and failures ≤ {max_fail_ratio:.1%}"


def report(results: list[GroupResult], slo_p99_ms: float, max_fail_ratio: float, *,
           full: bool = True) -> str:
    """The text a user reads: per group the candidates (when `full`) and why the pick wins."""
    lines = [f"Recommendations ({slo_text(slo_p99_ms, max_fail_ratio)}; cheapest within 5% of the best "
             "feasible throughput, or whose repeat interval overlaps it; cheapest = fewest workers, then "
             "smallest pool, then least memory)"]
    distinguishing = distinguishing_columns(results)
    for r in results:
        title = group_title(r, distinguishing)
        if r.chosen is not None:
            lines.append(f"- {title}: use {_size_label(r.chosen, varying_sizes(r.cells))}")
        else:
            lines.append(f"- {title}: no configuration meets the SLO")
        if full:
            lines.append(candidates_table(r))
            lines.extend(f"    {w}" for w in r.why if w != "no configuration meets the SLO")
        elif r.chosen is None and len(r.why) > 1:
            lines.append(f"    {r.why[1]}")
    return "\n".join(lines)


CSV_COLUMNS = ["group", "role", "feasible", "near_best", "reason", "rps", "rps_lo", "rps_hi",
               "repeats", "p99_ms", "fail_ratio", MEMORY, "in_flight", "pool_slots", "slo_p99_ms",
               "max_fail_ratio"]


def to_frame(results: list[GroupResult], slo_p99_ms: float, max_fail_ratio: float) -> pd.DataFrame:
    frames = []
    for i, r in enumerate(results):
        cells = r.cells.copy()
        checks = [little_check(c) for _, c in cells.iterrows()]
        cells["in_flight"] = [c.in_flight if c else np.nan for c in checks]
        cells["pool_slots"] = [c.slots if c and c.slots is not None else np.nan for c in checks]
        cells["group"] = i
        cells["slo_p99_ms"] = slo_p99_ms
        cells["max_fail_ratio"] = max_fail_ratio
        frames.append(cells)
    if not frames:
        return pd.DataFrame(columns=[*cell_columns(), *CSV_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    return out[[*CSV_COLUMNS[:1], *cell_columns(), *CSV_COLUMNS[1:]]]


def run(run_dir: Path, slo_p99_ms: float = DEFAULT_SLO_P99_MS,
        max_fail_ratio: float = DEFAULT_MAX_FAIL_RATIO, *, full: bool = True,
        say: Callable[[str], None] = print) -> list[GroupResult]:
    """Recommend for one run folder: print the report and write run_dir/recommend.csv."""
    if not (Path(run_dir) / "results.csv").is_file():
        raise RecommendError(f"{run_dir}/results.csv not found")
    df = aggregate.load_results(run_dir)
    results = recommend(df, slo_p99_ms, max_fail_ratio)
    say(report(results, slo_p99_ms, max_fail_ratio, full=full))
    path = Path(run_dir) / CSV_NAME
    to_frame(results, slo_p99_ms, max_fail_ratio).to_csv(path, index=False)
    say(f"recommendations: {path}")
    return results
