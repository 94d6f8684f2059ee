"""The audit's section at the top of report.html, drawn from DIR/audit.csv alone (none: no section)."""

from __future__ import annotations

import html
from pathlib import Path

from harness.answer import audit

_HEAD = ["route", "workers", "thread tokens", "verdict", "rps", "p99 ms", "/_bench/health p99 ms",
         "worst loop lag p99 ms", "blocking call site", "what to do"]
_KEYS = ["route", "workers", "thread_tokens", "verdict", "rps", "p99_ms", "health_p99_ms", "loop_lag_p99_ms",
         "stall_site", "advice"]


def section_audit(run_dir: Path) -> str:
    """An h2 and one table row per audited cell and per skipped route; "" without audit.csv."""
    if not (Path(run_dir) / audit.AUDIT_CSV).is_file():
        return ""
    rows = audit.read_csv(Path(run_dir))
    # the thread tokens column only when --thread-tokens was given (else every row has anyio's 40)
    shown = [(h, k) for h, k in zip(_HEAD, _KEYS, strict=True)
             if k != "thread_tokens" or any(r.get("thread_tokens") for r in rows)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in shown)
    body = []
    for row in rows:
        cls = "bad" if row["verdict"].startswith(("failing", "blocks", "limited")) else ""
        cells = "".join(f"<td>{html.escape(row.get(k) or '')}</td>" for _, k in shown)
        body.append(f'<tr class="{cls}">{cells}</tr>')
    return ('<h2 id="audit">Audit: every route of your app</h2>'
            f'<table id="audit-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
