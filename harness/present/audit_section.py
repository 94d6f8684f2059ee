"""The audit's section at the top of report.html, drawn from DIR/audit.csv alone (none: no section)."""

from __future__ import annotations

import html
from pathlib import Path

from harness.answer import audit, verdict_kinds

_HEAD = ["route", "workers", "thread tokens", "verdict", "rps", "p99 ms", "/_bench/health p99 ms",
         "worst loop lag p99 ms", "blocking call site", "what to do", "valid", "measured"]
_KEYS = ["route", "workers", "thread_tokens", "verdict", "rps", "p99_ms", "health_p99_ms", "loop_lag_p99_ms",
         "stall_site", "advice", "valid", "source"]
# Shown only when some row has one: --thread-tokens given (else every row has anyio's 40), a screen ran
# (source: "screen" for a route it cleared in the shared window, "alone" for one measured in its own cell).
_OPTIONAL = ("thread_tokens", "source")


def section_audit(run_dir: Path) -> str:
    """An h2 and one table row per audited cell and per skipped route; "" without audit.csv."""
    if not (Path(run_dir) / audit.AUDIT_CSV).is_file():
        return ""
    rows = audit.read_csv(Path(run_dir))
    shown = [(h, k) for h, k in zip(_HEAD, _KEYS, strict=True)
             if k not in _OPTIONAL or any(r.get(k) for r in rows)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in shown)
    body = []
    for row in rows:
        kind = verdict_kinds.kind_of(row["verdict"])
        cls = "bad" if kind.name != verdict_kinds.UNKNOWN.name and kind.severity != "notice" else ""
        cells = "".join(f"<td>{html.escape(_cell(row, k))}</td>" for _, k in shown)
        body.append(f'<tr class="{cls}">{cells}</tr>')
    return ('<h2 id="audit">Audit: every route of your app</h2>'
            f'<table id="audit-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def _cell(row: dict, key: str) -> str:
    """A cell's text; validity in words ("no: Locust at 99% of its core"), so an invalid "fine" reads so."""
    if key != "valid" or row["verdict"].startswith("skipped"):
        return row.get(key) or ""
    rerun = f" ({row['rerun']})" if row.get("rerun") else ""  # the first measurement's Locust saturated
    if row.get("valid") in ("True", "true", "1"):
        return "yes" + rerun
    return "no: " + (row.get("invalid_reason") or "see the cells the harness cannot fully trust") + rerun
