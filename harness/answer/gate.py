"""The audit as a CI gate, from audit.csv's rows alone: which measured rows have a verdict kind in
the `--fail-on` list, the exit code that follows, and the last lines the terminal shows.

Exit codes under `--check`: 0 no measured row's kind is in the list, 1 at least one is; bad input
stays 2 and interruptions, a full disk etc. keep their own codes (they are raised, not returned).
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.answer.verdict_kinds import SKIPPED, VerdictKind, kind_of

EXIT_PASS = 0
EXIT_FAIL = 1


def is_measured(row: dict) -> bool:
    return not str(row.get("verdict", "")).startswith(SKIPPED)


def row_kind(row: dict) -> VerdictKind:
    return kind_of(str(row.get("verdict", "")))


def failing(rows: Iterable[dict], fail_on: Iterable[str]) -> list[dict]:
    """The measured rows whose verdict kind is in `fail_on`, in audit.csv's order."""
    names = set(fail_on)
    return [r for r in rows if is_measured(r) and row_kind(r).name in names]


def exit_code(rows: Iterable[dict], fail_on: Iterable[str]) -> int:
    return EXIT_FAIL if failing(rows, fail_on) else EXIT_PASS


CELL_KEYS = ("route", "workers", "users", "thread_tokens")
REPEATS = "repeats"  # "2 of 3 repeats": how many of a cell's repeats had the verdict shown


def per_cell(rows: Iterable[dict], fail_on: Iterable[str]) -> list[dict]:
    """One row per cell (route × workers × users × thread tokens), in audit.csv's order: with
    --repeat N, audit.csv holds a row per repeat. A cell fails the gate when any repeat does (the
    row shown is its first failing repeat); otherwise its first repeat stands for it."""
    names = set(fail_on)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = tuple(str(row.get(k, "")) for k in CELL_KEYS) if is_measured(row) else (id(row),)
        groups.setdefault(key, []).append(row)
    out = []
    for group in groups.values():
        bad = failing(group, names)
        shown = dict(bad[0] if bad else group[0])
        if len(group) > 1:
            same = sum(1 for r in group if r.get("verdict") == shown.get("verdict"))
            shown[REPEATS] = f"{same} of {len(group)} repeats"
        out.append(shown)
    return out


def cell_label(row: dict) -> str:
    """'/items/blocking W=1' (plus 'tokens=80' when --thread-tokens was given): one case of the gate."""
    label = f"{row.get('route', '')} W={row.get('workers') or '?'}"
    return label + (f" tokens={row['thread_tokens']}" if row.get("thread_tokens") else "")


def lines(rows: list[dict], fail_on: Iterable[str]) -> list[str]:
    """One line per failing cell (verdict, call site), then the gate's own verdict line."""
    names = list(fail_on)
    bad = failing(rows, names)
    out = []
    for row in bad:
        site = f" at {row['stall_site']}" if row.get("stall_site") else ""
        repeats = f" ({row[REPEATS]})" if row.get(REPEATS) else ""
        out.append(f"gate: FAIL {cell_label(row)}: {row['verdict']}{site}{repeats}")
    measured = sum(1 for r in rows if is_measured(r))
    if bad:
        out.append(f"gate: failed, {len(bad)} of {measured} measured cell(s) have a verdict in "
                   f"--fail-on {','.join(names)} (exit {EXIT_FAIL})")
    else:
        out.append(f"gate: passed, none of {measured} measured cell(s) has a verdict in "
                   f"--fail-on {','.join(names)} (exit {EXIT_PASS})")
    return out
