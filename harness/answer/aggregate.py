"""Read results.csv and reduce it to one row per cell (a cell = every parameter except `repeat`).

Per cell we report the median across repeats of each headline measure with a distribution-free
interval for that median: the order-statistic interval [x_(j), x_(n+1-j)] whose coverage
P(j <= B <= n-j), B ~ Binomial(n, 1/2), is at least 95%. With fewer than 6 repeats no such interval
exists, and we fall back to the full min–max range (flagged in the `interval` column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binom

from harness.data import knobs, schema
from harness.judge import users_bound

CELL_COLUMNS = [c for c in schema.PARAM_COLUMNS if c != "repeat"]
SUMMARY_MEASURES = ["rps", "p50_ms", "p99_ms", "p99_lower_ms", "health_p99_ms", "health_max_ms",
                    "loop_lag_p99_ms", "efficiency", "target_rss_mb", "ctx_switches_per_req"]

# Column types follow the knob table: text knobs, switches, numbers.
TEXT_PARAMS = ["target", "scenario", *(k.col for k in knobs.CELL_KNOBS if k.type is str)]
BOOL_PARAMS = [k.col for k in knobs.CELL_KNOBS if k.type is bool]
NUMERIC_PARAMS = [c for c in schema.PARAM_COLUMNS if c not in TEXT_PARAMS + BOOL_PARAMS]
TEXT_MEASURES = ["status", "error", "invalid_reason", "started_at", "raw_dir", "bound_by", "bound_detail",
                 "fail_top", "stall_site", "app_error", "profile_svg"]
BOOL_MEASURES = ["valid", "profiled"]
NUMERIC_MEASURES = [c for c in schema.MEASURE_COLUMNS if c not in TEXT_MEASURES + BOOL_MEASURES]

CONFIDENCE = 0.95
_TRUE_STRINGS = {"true", "1", "yes", "y", "t"}


ResultsFormatError = schema.ResultsFormatError  # results.csv is not a known version of the format


# --------------------------------------------------------------------------------------- loading


def _to_bool(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return bool(value)
    return str(value).strip().lower() in _TRUE_STRINGS


def _numeric_param(series: pd.Series) -> pd.Series:
    """Numbers; whole-number columns without gaps become int64 so labels read `4`, not `4.0`."""
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    if len(values) and values.notna().all() and (values == values.round()).all():
        return values.astype("int64")
    return values


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of a results frame with the schema's dtypes (see load_results)."""
    missing = [c for c in schema.columns_of(1) if c not in df.columns]
    if missing:
        raise ResultsFormatError(f"results are missing column(s): {', '.join(missing)}")
    df = df.copy()
    for col in schema.OPTIONAL_COLUMNS:  # written by an older version of the harness: empty
        if col not in df.columns:
            df[col] = np.nan
    df = df[schema.COLUMNS + [c for c in df.columns if c not in schema.COLUMNS]]  # the schema's order
    for col in NUMERIC_PARAMS:
        df[col] = _numeric_param(df[col])
    for col in TEXT_PARAMS:
        df[col] = df[col].astype("object").where(df[col].notna(), None)
    for col in BOOL_PARAMS:
        df[col] = df[col].map(_to_bool).astype(bool)
    for col in NUMERIC_MEASURES:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in TEXT_MEASURES:
        df[col] = df[col].astype("object").where(df[col].notna(), "").astype(str)
    df["status"] = df["status"].str.strip().str.lower()
    for col in BOOL_MEASURES:
        df[col] = df[col].map(_to_bool).astype(bool)
    # efficiency is rps / ceiling; fill it where the collector left it empty but both parts exist.
    ceiling = df["ceiling_rps"].where(df["ceiling_rps"] > 0)
    df["efficiency"] = df["efficiency"].fillna(df["rps"] / ceiling)
    return df


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a run's results.csv (`path` is the run folder or the CSV itself) with schema dtypes.

    Numeric parameters and measures become numbers (float; gap-free whole-number parameters int),
    `valid` becomes bool (accepts True/False strings), text columns become strings with "" for
    missing. A file of an older schema version reads with the newer columns empty. Raises
    FileNotFoundError if there is no CSV and ResultsFormatError (a ValueError) naming any column its
    version should have and lacks, or for a version this harness does not know.
    """
    path = Path(path)
    csv = path / "results.csv" if path.is_dir() else path
    if not csv.is_file():
        raise FileNotFoundError(f"no results file at {csv}")
    return users_bound.withdraw_grown(coerce(schema.read_results(csv)))  # a bound only one cell can't show


# ------------------------------------------------------------------------------------ statistics


def median_interval(values: object, confidence: float = CONFIDENCE) -> tuple[float, float, str]:
    """(lo, hi, kind) for the median of `values` (NaNs ignored).

    kind is "95%" (for confidence 0.95) when the narrowest symmetric order-statistic interval with
    binomial coverage >= confidence exists, else "range" (min–max; also for 1 value), or "none"
    when there are no values.
    """
    x = np.sort(np.asarray(pd.Series(values, dtype="float64").dropna(), dtype="float64"))
    n = len(x)
    if n == 0:
        return np.nan, np.nan, "none"
    # Interval [x_(j), x_(k)] with k = n + 1 - j (1-based) covers the median with probability
    # P(j <= B <= k - 1) = F(k - 1) - F(j - 1); shrink j from the middle outward until it holds.
    for j in range(n // 2, 0, -1):
        k = n + 1 - j
        coverage = binom.cdf(k - 1, n, 0.5) - binom.cdf(j - 1, n, 0.5)
        if coverage >= confidence:
            return float(x[j - 1]), float(x[k - 1]), f"{confidence:.0%}"
    return float(x[0]), float(x[-1]), "range"


def _cv(values: pd.Series) -> float:
    v = values.dropna()
    if len(v) < 2 or v.mean() == 0:
        return np.nan
    return float(v.std(ddof=1) / v.mean())


def _join_unique(texts: pd.Series) -> str:
    seen: list[str] = []
    for t in texts:
        t = str(t).strip()
        if t and t.lower() != "nan" and t not in seen:
            seen.append(t)
    return "; ".join(seen)


def _first_number(values: pd.Series) -> float:
    v = values.dropna()
    return float(v.iloc[0]) if len(v) else np.nan


def _summarize_cell(cell: pd.DataFrame) -> dict[str, object]:
    ok = cell[cell["status"] == "ok"]
    row: dict[str, object] = {}
    for col in SUMMARY_MEASURES:
        vals = ok[col].dropna()
        lo, hi, _ = median_interval(vals)
        row[col] = float(vals.median()) if len(vals) else np.nan
        row[f"{col}_lo"] = lo
        row[f"{col}_hi"] = hi
    row["interval"] = median_interval(ok["rps"])[2]
    row["repeats"] = len(ok)
    row["rps_cv"] = _cv(ok["rps"])
    row["ceiling_rps"] = _first_number(cell["ceiling_rps"])
    # The fewest /health samples any probed worker had in any repeat: what a chart's p99 rests on.
    samples = ok["health_min_samples"].dropna()
    row["health_min_samples"] = float(samples.min()) if len(samples) else np.nan
    row["valid"] = bool(len(ok) > 0 and ok["valid"].all())
    row["invalid_reason"] = _join_unique(ok.loc[~ok["valid"], "invalid_reason"])
    # What limited the cell: the verdict most repeats reached, with one such repeat's figures.
    bounds = ok[["bound_by", "bound_detail"]].astype(object).fillna("").astype(str)
    bounds = bounds[bounds["bound_by"] != ""]
    row["bound_by"] = bounds["bound_by"].mode().iloc[0] if len(bounds) else ""
    row["bound_detail"] = (bounds.loc[bounds["bound_by"] == row["bound_by"], "bound_detail"].iloc[0]
                           if len(bounds) else "")
    # the most common of the ok repeats ('' when none has one)
    for col in ("fail_top", "stall_site", "app_error"):
        said = ok[col].astype(object).fillna("").astype(str)
        said = said[said != ""]
        row[col] = said.mode().iloc[0] if len(said) else ""
    failed = cell[cell["status"] == "failed"]
    row["failed_repeats"] = len(failed)
    row["error"] = _join_unique(failed["error"])
    return row


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: median, _lo, _hi of each SUMMARY_MEASURES column over status=="ok" repeats.

    Also: interval ("95%", "range", or "none" if no repeat succeeded), repeats (ok count), rps_cv,
    ceiling_rps, valid (all ok repeats valid; False when none succeeded), invalid_reason,
    bound_by and bound_detail (the most common verdict of the ok repeats), fail_top and stall_site
    (the most common of the ok repeats), failed_repeats and error
    (joined unique messages of failed repeats). Cells in which every
    repeat failed are kept, with NaN measures, so callers can show them.
    """
    if not set(schema.COLUMNS) <= set(df.columns) or df["valid"].dtype != bool:
        df = coerce(df)
    out_cols = [
        *CELL_COLUMNS,
        *(f"{c}{s}" for c in SUMMARY_MEASURES for s in ("", "_lo", "_hi")),
        "interval", "repeats", "rps_cv", "ceiling_rps", "health_min_samples", "valid", "invalid_reason",
        "bound_by", "bound_detail", "fail_top", "stall_site", "app_error", "failed_repeats", "error",
    ]
    if df.empty:
        return pd.DataFrame(columns=out_cols)
    rows = []
    for key, cell in df.groupby(CELL_COLUMNS, dropna=False, sort=True):
        rows.append({**dict(zip(CELL_COLUMNS, key, strict=True)), **_summarize_cell(cell)})
    out = pd.DataFrame(rows, columns=out_cols)
    out["repeats"] = out["repeats"].astype("int64")
    out["failed_repeats"] = out["failed_repeats"].astype("int64")
    out["valid"] = out["valid"].astype(bool)
    return out.reset_index(drop=True)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """The failed repeats: target, scenario, workers, users, repeat, error."""
    cols = ["target", "scenario", "workers", "users", "repeat", "error"]
    return df.loc[df["status"] == "failed", cols].reset_index(drop=True)


def noisy_cells(summary: pd.DataFrame, threshold: float = 0.05) -> pd.DataFrame:
    """Cells whose throughput varies across repeats by more than `threshold` (coefficient of variation)."""
    return summary[summary["rps_cv"] > threshold].reset_index(drop=True)
