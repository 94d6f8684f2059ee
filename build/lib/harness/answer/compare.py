"""Two runs side by side: what differs between them, and per shared cell whether B is faster than A.

Reads only the two run folders (results.csv, meta.json).

- **Joining.** A knob that is constant within each run but differs between them (loop uvloop in A,
  asyncio in B) is *the* difference; the cells are joined on every other parameter. meta.json
  differences (git commit, package versions, machine) are named too.
- **Ratios.** Per shared cell, B/A of the median rps, p99 and /health p99.
- **Verdicts.** With ≥ 3 repeats on both sides: an exact permutation test (harness.answer.significance)
  at 5% two-sided: "faster"/"slower" when p ≤ 0.05, else "no significant difference"; when the repeats
  cannot reach 5% at all (3 vs 3: smallest p 0.1) the verdict says so ("cannot tell: ... use
  --repeat 5"). The bootstrap interval of the ratio of medians is shown as the effect size only (a
  percentile bootstrap at 3 vs 3 excludes 1 one time in 10 with no difference). With fewer repeats:
  "within noise" when the ratio lies inside the machine's observed repeat spread, else "probably
  faster/slower".

Why one module over 300 lines: joining two runs, their ratios, the verdicts and the comparison chart
are one command's pipeline over one joined table; the test itself lives in harness.answer.significance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from harness.answer import aggregate, significance
from harness.data import schema

# (column, label, higher_is_better)
METRICS = [("rps", "rps", True), ("p99_ms", "p99", False), ("health_p99_ms", "/health p99", False)]
MIN_REPEATS_FOR_TEST = 3
LEVEL = significance.LEVEL  # two-sided, of the permutation test
CONFIDENCE = 0.95  # of the bootstrap interval shown as the effect size
SPREAD_PERCENTILE = 90  # of per-cell max/min over repeats: the band two equal runs stay inside
ASSUMED_SPREAD = 1.10  # only when neither run has repeats nor a CPU-speed spread in meta.json
N_RESAMPLES = 4000
# meta.json entries that describe conditions (compared); run ids, timings and per-run
# measurements of the machine (upstream capacity, CPU calibration) are not conditions.
META_CONDITIONS = ["git_commit", "schema_version", "preset", "cpu_count", "cores_available", "cpu_model",
                   "pinning", "host"]
MACHINE_KEYS = ["cpu_count", "cpu_model"]
# What is measured, never "the difference": runs of different targets or scenarios share no cell.
ALWAYS_JOINED = ("target", "scenario")


class CompareError(ValueError):
    """The two runs cannot be compared (one-line reason)."""


@dataclass
class Run:
    path: Path
    df: pd.DataFrame
    meta: dict


def load_run(path: Path) -> Run:
    path = Path(path)
    if not (path / "results.csv").is_file():
        raise CompareError(f"{path}/results.csv not found")
    df = aggregate.load_results(path)
    missing = [c for c in schema.COLUMNS if c not in df.columns]
    df = df.assign(**dict.fromkeys(missing, np.nan)) if missing else df  # older files: empty
    meta: dict = {}
    if (path / "meta.json").is_file():
        try:
            loaded = json.loads((path / "meta.json").read_text())
            meta = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            meta = {}
    return Run(path, df, meta)


# ---------------------------------------------------------------------------------- what differs


def norm(value: object) -> str:
    """One spelling per value, so 40 == 40.0 and NaN == "" when joining."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return f"{float(value):g}"
    return str(value).strip()


def cell_columns() -> list[str]:
    return [c for c in schema.PARAM_COLUMNS if c != "repeat"]


def _values(df: pd.DataFrame, col: str) -> set[str]:
    return {norm(v) for v in df[col]}


def knob_differences(a: pd.DataFrame, b: pd.DataFrame) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(join columns, [(knob, value in A, value in B)]): a knob constant in each run but different."""
    join, differ = [], []
    for col in cell_columns():
        va, vb = _values(a, col), _values(b, col)
        if col not in ALWAYS_JOINED and len(va) == 1 and len(vb) == 1 and va != vb:
            differ.append((col, next(iter(va)) or "(empty)", next(iter(vb)) or "(empty)"))
        else:
            join.append(col)
    return join, differ


def _flat(meta: dict) -> dict[str, str]:
    out = {k: norm(meta.get(k)) for k in META_CONDITIONS if k in meta}
    for pkg, version in (meta.get("versions") or {}).items():
        out[f"versions.{pkg}"] = norm(version)
    params = set(cell_columns())
    for knob, value in (meta.get("knobs") or {}).items():
        # Knobs that are row parameters (workers, targets, ...) are compared cell by cell instead.
        if knob in params or knob.rstrip("s") in params:
            continue
        out[f"knobs.{knob}"] = norm(value) if not isinstance(value, list | dict) else json.dumps(value)
    return out


def meta_differences(meta_a: dict, meta_b: dict) -> list[tuple[str, str, str]]:
    fa, fb = _flat(meta_a), _flat(meta_b)
    keys = [k for k in {**fa, **fb} if fa.get(k) != fb.get(k)]
    return [(k, fa.get(k, "(absent)"), fb.get(k, "(absent)")) for k in keys]


def machine_warning(meta_a: dict, meta_b: dict) -> str | None:
    differ = [f"{k} {norm(meta_a.get(k)) or '?'} vs {norm(meta_b.get(k)) or '?'}" for k in MACHINE_KEYS
              if norm(meta_a.get(k)) != norm(meta_b.get(k))]
    if not differ:
        return None
    return ("warning: the runs come from different machines (" + "; ".join(differ) + "): "
            "the ratios mix the change with the hardware")


# -------------------------------------------------------------------------------------- verdicts


@dataclass
class Spread:
    """How far apart two repeats of the same cell land on this machine, as a ratio ≥ 1."""

    ratio: float
    source: str


def repeat_spread(runs: list[Run], metric: str) -> Spread:
    """The SPREAD_PERCENTILE-th percentile, over every cell of both runs with ≥ 2 repeats, of max/min."""
    ratios = []
    for run in runs:
        ok = run.df[(run.df["status"] == "ok") & run.df[metric].gt(0)]
        keys = [c for c in cell_columns() if c in ok.columns]
        for _, cell in ok.groupby(keys, dropna=False):
            if len(cell) >= 2:
                ratios.append(float(cell[metric].max() / cell[metric].min()))
    if ratios:
        return Spread(float(np.percentile(ratios, SPREAD_PERCENTILE)),
                      f"repeats of {len(ratios)} cell(s)")
    speed = [float(r.meta["cpu_speed_spread"]) for r in runs
             if isinstance(r.meta.get("cpu_speed_spread"), int | float)]
    if speed:
        return Spread(max(max(speed), 1.0), "CPU-speed spread of the calibration (no repeats)")
    return Spread(ASSUMED_SPREAD, "assumed (no repeats, no calibration spread)")


@dataclass
class Verdict:
    ratio: float
    lo: float
    hi: float
    verdict: str
    method: str
    p: float = math.nan      # the permutation test's two-sided p (NaN: no test)
    min_p: float = math.nan  # the smallest p these repeats allow


def _direction(ratio_above_one: bool, higher_is_better: bool) -> str:
    return "faster" if ratio_above_one == higher_is_better else "slower"


def _ratio_of_medians(b: np.ndarray, a: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(b, axis=axis) / np.median(a, axis=axis)


def _effect_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The bootstrap interval of the ratio of medians: the effect size shown, not the test."""
    ci = bootstrap((b, a), _ratio_of_medians, n_resamples=N_RESAMPLES, method="percentile",
                   vectorized=True, confidence_level=CONFIDENCE, rng=np.random.default_rng(0))
    return float(ci.confidence_interval.low), float(ci.confidence_interval.high)


def verdict(a: np.ndarray, b: np.ndarray, higher_is_better: bool, spread: Spread,
            effect: bool = True) -> Verdict:
    """B against A for one metric; a and b are the repeats' values (NaNs already dropped).

    With ≥ MIN_REPEATS_FOR_TEST a side the word comes from the exact permutation test alone;
    `effect=False` skips the bootstrap interval (the error-rate test needs only the word)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0 or np.median(a) <= 0:
        return Verdict(math.nan, math.nan, math.nan, "not measured", "")
    ratio = float(np.median(b) / np.median(a))
    if len(a) >= MIN_REPEATS_FOR_TEST and len(b) >= MIN_REPEATS_FOR_TEST:
        t = significance.test(a, b)
        lo, hi = _effect_interval(a, b) if effect else (math.nan, math.nan)
        if not t.can_show(LEVEL):
            word = "cannot tell: " + t.words(LEVEL)
        elif t.direction(LEVEL):
            word = _direction(t.sign > 0, higher_is_better)
        else:
            word = "no significant difference"
        method = (f"exact permutation test, {len(a)} vs {len(b)} repeats: p = {t.p:.2g} "
                  f"(smallest possible {t.min_p:.2g}); interval: bootstrap of the ratio of medians")
        return Verdict(ratio, lo, hi, word, method, t.p, t.min_p)
    band = spread.ratio
    if 1 / band <= ratio <= band:
        word = "within noise"
    else:
        word = "probably " + _direction(ratio > 1, higher_is_better)
    return Verdict(ratio, math.nan, math.nan, word, f"spread ±{band - 1:.1%} ({spread.source})")


# ---------------------------------------------------------------------------------------- joining


def _keyed(df: pd.DataFrame, join: list[str]) -> pd.DataFrame:
    ok = df[df["status"] == "ok"]
    return ok.assign(_key=[tuple(norm(v) for v in row) for row in ok[join].itertuples(index=False)])


def _no_shared_cell(a: Run, b: Run, join: list[str]) -> CompareError:
    disjoint = [f"{c} (A: {','.join(sorted(_values(a.df, c)))}; B: {','.join(sorted(_values(b.df, c)))})"
                for c in join if not _values(a.df, c) & _values(b.df, c)]
    why = f": no common {disjoint[0]}" if disjoint else ""
    return CompareError(f"{a.path} and {b.path} share no measured cell{why}")


def compare(a: Run, b: Run) -> tuple[pd.DataFrame, list[tuple[str, str, str]], dict[str, Spread]]:
    """(per-cell table, knob differences, noise band per metric). Raises CompareError if nothing is shared."""
    join, differ = knob_differences(a.df, b.df)
    ka, kb = _keyed(a.df, join), _keyed(b.df, join)
    shared = sorted(set(ka["_key"]) & set(kb["_key"]))
    if not shared:
        raise _no_shared_cell(a, b, join)
    spreads = {m: repeat_spread([a, b], m) for m, _, _ in METRICS}
    rows = []
    for key in shared:
        ca, cb = ka[ka["_key"] == key], kb[kb["_key"] == key]
        row: dict[str, object] = dict(zip(join, ca[join].iloc[0], strict=True))
        row["a_repeats"], row["b_repeats"] = len(ca), len(cb)
        for metric, _, higher in METRICS:
            va, vb = ca[metric].dropna().to_numpy(), cb[metric].dropna().to_numpy()
            v = verdict(va, vb, higher, spreads[metric])
            row[f"{metric}_a"] = float(np.median(va)) if len(va) else math.nan
            row[f"{metric}_b"] = float(np.median(vb)) if len(vb) else math.nan
            row[f"{metric}_ratio"], row[f"{metric}_lo"], row[f"{metric}_hi"] = v.ratio, v.lo, v.hi
            row[f"{metric}_verdict"], row[f"{metric}_method"] = v.verdict, v.method
            row[f"{metric}_p"], row[f"{metric}_min_p"] = v.p, v.min_p
        rows.append(row)
    return pd.DataFrame(rows), differ, spreads


# ----------------------------------------------------------------------------------------- output


def cell_labels(table: pd.DataFrame, join: list[str]) -> list[str]:
    """Each cell named by the join knobs that vary among the shared cells."""
    varying = [c for c in join if table[c].map(norm).nunique() > 1] or ["target", "scenario"]
    out = []
    for _, r in table.iterrows():
        parts = [norm(r[c]) if c in ("target", "scenario") else f"{c}={norm(r[c])}" for c in varying]
        out.append(" · ".join(parts))
    return out


def text_table(table: pd.DataFrame, labels: list[str]) -> str:
    header = ["cell", "n A/B"] + [f"{label} A → B (B/A): verdict" for _, label, _ in METRICS]
    rows = []
    for label, (_, r) in zip(labels, table.iterrows(), strict=True):
        cols = [label, f"{r['a_repeats']}/{r['b_repeats']}"]
        for metric, _, _ in METRICS:
            if math.isnan(r[f"{metric}_ratio"]):
                cols.append("not measured")
                continue
            ci = "" if math.isnan(r[f"{metric}_lo"]) else \
                f" [{r[f'{metric}_lo']:.2f}–{r[f'{metric}_hi']:.2f}]"
            p = r.get(f"{metric}_p", math.nan)
            pv = "" if pd.isna(p) or str(r[f"{metric}_verdict"]).startswith("cannot") else f", p={p:.2g}"
            cols.append(f"{r[f'{metric}_a']:.4g} → {r[f'{metric}_b']:.4g} (×{r[f'{metric}_ratio']:.2f}{ci}): "
                        f"{r[f'{metric}_verdict']}{pv}")
        rows.append(cols)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join("  " + line for line in lines)


def difference_text(differ: list[tuple[str, str, str]], meta_diff: list[tuple[str, str, str]]) -> str:
    parts = [f"{k}: {va} (A) vs {vb} (B)" for k, va, vb in differ + meta_diff]
    if not parts:
        return "The runs differ in no recorded knob: any difference is noise or something unrecorded."
    return "B differs from A in " + "; ".join(parts)


VERDICT_COLORS = {"faster": "tab:green", "slower": "tab:red"}
NICE_RATIOS = [0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2, 3, 4, 5, 10, 20]


def _color(word: str) -> str:
    for key, color in VERDICT_COLORS.items():
        if word.endswith(key):
            return color
    return "0.45"


def _ratio_axis(ax, values: list[float]) -> None:
    """Log x axis around 1 with a few readable ratio ticks (×0.9, ×1, ×1.25...)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    finite = [v for v in values if np.isfinite(v) and v > 0] or [1.0]
    lo, hi = min(*finite, 1.0), max(*finite, 1.0)
    pad = (hi / lo) ** 0.12 if hi > lo * 1.02 else 1.03
    lo, hi = lo / pad, hi * pad
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks: list[float] = []
    gap = math.log(hi / lo) / 7  # no two labels closer than a seventh of the axis
    for t in sorted([t for t in NICE_RATIOS if lo <= t <= hi], key=lambda t: abs(math.log(t))):
        if all(abs(math.log(t / k)) >= gap for k in ticks):
            ticks.append(t)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"×{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def chart(table: pd.DataFrame, labels: list[str], spreads: dict[str, Spread], title: str,
          path: Path) -> Path:
    """One panel per metric: B/A per cell on a log axis, 1 marked, the noise band shaded.

    Filled markers carry a permutation-test verdict (the bootstrap interval drawn as a bar); hollow
    ones are single runs judged against the noise band.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = len(table)
    legend_in, title_in = 0.8, 0.7  # fixed room, in inches, so a 2-cell chart is not all legend
    height = legend_in + title_in + max(1.6, 0.42 * n)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.8 * len(METRICS) + 3.0, height),
                             sharey=True, squeeze=False)
    for ax, (metric, label, higher) in zip(axes[0], METRICS, strict=True):
        band = spreads[metric].ratio
        ax.axvspan(1 / band, band, color="0.9", zorder=0)
        ax.axvline(1.0, color="0.3", lw=1, zorder=1)
        for i, (_, r) in enumerate(table.iterrows()):
            ratio = float(r[f"{metric}_ratio"])
            if math.isnan(ratio):
                ax.text(1.0, i, "not measured", ha="center", va="center", fontsize=7, color="0.4")
                continue
            color = _color(str(r[f"{metric}_verdict"]))
            tested = not math.isnan(r[f"{metric}_lo"])
            if tested:
                ax.plot([r[f"{metric}_lo"], r[f"{metric}_hi"]], [i, i], color=color, lw=2.5, zorder=2)
            ax.plot(ratio, i, "o", ms=7, zorder=3, color=color, markerfacecolor=color if tested else "white",
                    markeredgewidth=1.6)
            ax.annotate(f"×{ratio:.2f}", (ratio, i), xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=7.5)
        _ratio_axis(ax, [*table[f"{metric}_ratio"], *table[f"{metric}_lo"], *table[f"{metric}_hi"],
                         band, 1 / band])
        better = "right: B better" if higher else "left: B better"
        ax.set_title(f"{label} B/A ({better})", fontsize=9.5)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(np.arange(n), labels, fontsize=8.5)
    axes[0][0].set_ylim(n - 0.4, -0.7)
    handles = [Line2D([], [], marker="o", ls="", color=c, label=w) for w, c in
               [("faster", "tab:green"), ("slower", "tab:red"), ("no difference", "0.45")]]
    handles += [Line2D([], [], marker="o", ls="", color="0.45", markerfacecolor="white",
                       label="hollow: fewer than 3 repeats (\"probably\" / within noise)"),
                Line2D([], [], color="0.45", lw=2.5,
                       label="bar: bootstrap interval of the ratio (effect size)"),
                Line2D([], [], color="0.88", lw=8, label="shaded: this machine's repeat spread")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, legend_in / height, 1, 1 - 0.35 / height))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(a_dir: Path, b_dir: Path, out: Path | None = None,
        say: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> pd.DataFrame:
    """Compare run B against run A: print the table, write compare.csv and compare.png."""
    a, b = load_run(a_dir), load_run(b_dir)
    table, differ, spreads = compare(a, b)
    meta_diff = meta_differences(a.meta, b.meta)
    machine = machine_warning(a.meta, b.meta)
    if machine:
        warn(machine)
    join = [c for c in cell_columns() if c not in {k for k, _, _ in differ}]
    labels = cell_labels(table, join)
    say(f"A = {a.path}\nB = {b.path}")
    say(difference_text(differ, meta_diff))
    say(f"{len(table)} shared cell(s); noise band per metric: " + ", ".join(
        f"{label} ±{spreads[m].ratio - 1:.1%}" for m, label, _ in METRICS)
        + f" ({spreads['rps'].source})")
    if not spreads["rps"].source.startswith("repeats"):
        say("  no repeats on either side: verdicts are guesses against that band; "
            "--repeat 5 on both runs gives a test that can reach 5%")
    say(text_table(table, labels))
    out = Path(out) if out is not None else b.path / f"compare-vs-{a.path.name}"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "compare.csv", index=False)
    knobs = ", ".join(f"{k} {vb} vs {va}" for k, va, vb in differ) or "same knobs"
    title = f"B/A per shared cell — B: {b.path.name}, A: {a.path.name} ({knobs})"
    png = chart(table, labels, spreads, title, out / "compare.png")
    say(f"compare: {out / 'compare.csv'}\nchart: {png}")
    return table
