"""What a CI page shows of an audit, from audit.csv's rows: GitHub Actions workflow commands
(`::error file=…,line=…,title=…::…` at the app's own line of the stall site, so the pull request
shows it on the line that blocks) and the audit table in Markdown (the job summary).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from harness.answer import gate

_SITE = re.compile(r"^(?P<file>[^\s:]+\.py):(?P<line>\d+)\b")
_SKIP_DIRS = {".venv", "venv", "site-packages", "dist-packages", "node_modules", ".git", "__pycache__"}


def _escape(text: str, prop: bool = False) -> str:
    """GitHub's escaping for a command's message (and, further, for a property's value)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def source_file(site_file: str, app_dir: Path, root: Path) -> str | None:
    """The stall site's file ('items.py', or 'pkg/items.py') as a path relative to `root` (the
    repository: GitHub places annotations by it), found under `app_dir`; None when not exactly one."""
    app_dir = app_dir.resolve()
    direct = app_dir / site_file
    found = [direct] if direct.is_file() else [
        p for p in app_dir.rglob(Path(site_file).name)
        if str(p).endswith("/" + site_file) and not _SKIP_DIRS & set(p.relative_to(app_dir).parts)]
    if len(found) != 1:
        return None
    path = found[0].resolve()
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:  # the app lies outside the repository: its own folder is the best guess
        return str(path.relative_to(app_dir))


def github_annotations(rows: list[dict], fail_on: Iterable[str], app_dir: Path,
                       root: Path | None = None) -> list[str]:
    """One `::error` per failing cell; a `::warning` for a cell of another kind with a warning severity."""
    root = root or Path.cwd()
    names = set(fail_on)
    out = []
    for row in rows:
        if not gate.is_measured(row):
            continue
        kind = gate.row_kind(row)
        level = "error" if kind.name in names else ("warning" if kind.severity != "notice" else None)
        if level is None:
            continue
        props = []
        match = _SITE.match(str(row.get("stall_site") or ""))
        file = source_file(match.group("file"), app_dir, root) if match else None
        if match and file:
            props += [f"file={_escape(file, True)}", f"line={match.group('line')}"]
        props.append(f"title={_escape(f'{gate.cell_label(row)}: {kind.name}', True)}")
        site = f" at {row['stall_site']}" if row.get("stall_site") else ""
        message = f"{row['verdict']}{site}: {row.get('advice', '')}"
        out.append(f"::{level} {','.join(props)}::{_escape(message)}")
    return out


_MD_COLS = [("route", "route"), ("W", "workers"), ("verdict", "verdict"), ("rps", "rps"),
            ("p99 ms", "p99_ms"), ("health p99 ms", "health_p99_ms"), ("valid", "valid"),
            ("call site", "stall_site"), ("what to do", "advice"), ("measured", "source")]


def _md(text: str) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[dict], fail_on: Iterable[str], app: str) -> str:
    """The audit table in Markdown, headed by the gate's verdict."""
    names = list(fail_on)
    bad = gate.failing(rows, names)
    head = (f"### fastapi-bench audit of `{app}`: " + (f"{len(bad)} cell(s) failing ({', '.join(names)})"
                                                      if bad else "passed"))
    lines = [head, "", "| gate | " + " | ".join(h for h, _ in _MD_COLS) + " |",
             "|---" * (len(_MD_COLS) + 1) + "|"]
    for row in rows:
        mark = "skipped" if not gate.is_measured(row) else ("**fail**" if row in bad else "ok")
        valid = row.get("valid", "")
        if valid and valid not in ("True", "true", "1") and row.get("invalid_reason"):
            valid = f"no: {row['invalid_reason']}"
        cells = [_md(valid if key == "valid" else row.get(key, "")) for _, key in _MD_COLS]
        lines.append(f"| {mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(rows: list[dict], fail_on: Iterable[str], app: str, path: Path | None) -> list[Path]:
    """Append the Markdown to `path` and to $GITHUB_STEP_SUMMARY when set (GitHub appends steps too)."""
    targets = [p for p in (path, os.environ.get("GITHUB_STEP_SUMMARY")) if p]
    written = []
    for target in dict.fromkeys(Path(t) for t in targets):
        with open(target, "a") as fh:
            fh.write(markdown(rows, fail_on, app))
        written.append(target)
    return written
