"""A cell invalid only because its Locust process saturated, measured again with more load processes
(harness/run/saturation.py), gives way to that re-run: the rows to show and compare, each re-run
with a note saying what it replaced."""

from __future__ import annotations

import math

from harness.data import knobs
from harness.data.schema import row_number as _num
from harness.data.schema import row_text as _text
from harness.judge.validity import saturated_only

RERUN = "_rerun"  # the note a re-run row carries (harness/run/saturation.py)


def _lp(row: dict) -> int:
    value = _num(row, "load_processes")
    return 1 if math.isnan(value) else int(value)


def drop_superseded(rows: list[dict]) -> list[dict]:
    """results.csv's rows less each one that was invalid only because Locust saturated and was
    measured again with more load processes; the re-run carries a note (key RERUN) saying so."""
    def identity(row: dict) -> tuple:  # every parameter but the load processes
        return tuple(_text(row, c) for c in knobs.PARAM_COLUMNS if c != "load_processes")

    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(identity(row), []).append(row)
    out = []
    for row in rows:
        later = [r for r in groups[identity(row)] if _lp(r) > _lp(row)]
        if later and saturated_only(row):
            continue
        first = [r for r in groups[identity(row)] if _lp(r) < _lp(row) and saturated_only(r)]
        if first:
            was = first[0]
            row = {**row, RERUN: (f"re-run with {_lp(row)} load processes: with {_lp(was)}, "
                                  f"{_text(was, 'invalid_reason')}")}
        out.append(row)
    return out
