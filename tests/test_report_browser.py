"""report.html in a real browser: Debian's headless Chromium, network off.

A copy of the report gets a small probe script at the top of <head>, before the page's own
Content-Security-Policy (which would block it), that records load errors, CSP violations and
console errors, then, once the page has loaded, writes what it saw into the DOM; --dump-dom reads
it back. Chromium's own console log (stderr) must be empty too. A screenshot is kept in tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.answer import claims, evidence
from harness.present import html_report
from tests.conftest import leftover_children
from tests.test_report import RUN_V1

# DESIGN.md: without the networking flags Chromium floods the closed network with connections.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic",
         "--proxy-server=127.0.0.1:9",  # any fetch that slipped through would go nowhere
         "--enable-logging=stderr", "--v=0"]

PROBE = """<script>
window.__problems = [];
addEventListener("error", e => __problems.push(
  "error: " + (e.message || (e.target && (e.target.src || e.target.href)))), true);
document.addEventListener("securitypolicyviolation", e => __problems.push(
  "csp: " + e.violatedDirective + " " + e.blockedURI));
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => {
    __problems.push(level + ": " + args.join(" "));
    original.apply(console, args);
  };
}
addEventListener("load", () => {
  const images = [...document.images];
  const out = document.createElement("pre");
  out.id = "browser-probe";
  out.textContent = JSON.stringify({
    images: images.length,
    loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    verdict_rows: document.querySelectorAll("#verdicts tbody tr").length,
    claim_charts: [...document.querySelectorAll("#verdicts tbody tr")]
      .filter(tr => tr.querySelector("img.claim-chart")).map(tr => tr.id),
    first_section: (document.querySelector("h2") || {}).id,
    answer_rows: document.querySelectorAll("#answer table.answer tbody tr").length,
    answer_first: !!document.querySelector("body > h1 + p + section#answer"),
    run_collapsed: !!document.querySelector("details#run-details:not([open])"),
    result_rows: document.querySelectorAll("#results tbody tr").length,
    audit_rows: document.querySelectorAll("#audit-table tbody tr").length,
    audit_heads: [...document.querySelectorAll("#audit-table thead th")].map(th => th.textContent),
    flame_graphs: document.querySelectorAll(".stall-flame svg").length,
    sections: [...document.querySelectorAll("h2")].map(h => h.id),
    problems: __problems,
  });
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:  # a clear failure, not a skip: make test installs it first (.ci/chromium)
        pytest.fail("chromium is not installed: run `apt-get update && apt-get install -y chromium` "
                    "(make test does this as root: .ci/chromium)")
    return path


def run_chromium(args: list[str], tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    """One Chromium, in its own session and profile, stopped whole if it overstays."""
    profile = tmp_path / f"profile-{name}"
    proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"chromium did not finish within 60 s: {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def probe_page(report: Path, tmp_path: Path) -> tuple[dict, subprocess.CompletedProcess]:
    """What the probe saw of `report` once loaded in Chromium, and Chromium's own run."""
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1),
                      encoding="utf-8")
    dom = run_chromium(["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()], tmp_path, "dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="browser-probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, "the probe never reported: the page did not finish loading"
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))
    return seen, dom


def no_chromium_left(already: set[int]) -> None:
    """No Chromium process outlives the test (its helpers may take a moment to follow the browser out)."""
    deadline = time.monotonic() + 10
    while leftover_children(exclude=already) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftover_children(exclude=already) == []


def test_report_in_headless_chromium(tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(RUN_V1, run)
    report = html_report.write(run)
    already = {p.pid for p in leftover_children()}
    seen, dom = probe_page(report, tmp_path)
    # Two per-scenario charts, and one evidence chart in each measured claim's row, all loaded.
    measured = [f"claim-{v.claim}" for v in claims.decide_run(run) if v.verdict != evidence.NOT_MEASURED]
    assert seen["claim_charts"] == measured and measured, seen
    assert seen["images"] == 2 + len(measured) and seen["loaded"] == seen["images"], seen
    assert seen["verdict_rows"] == len(claims.REGISTRY) and seen["result_rows"] == 36, seen
    assert seen["problems"] == [], seen
    # The answer is the first section, right under the title; one row per target in each workload;
    # "what was run" is collapsed.
    assert seen["first_section"] == "answer-h" and seen["answer_first"], seen
    assert seen["answer_rows"] >= 3 and seen["run_collapsed"], seen
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console

    shot = tmp_path / "report.png"
    taken = run_chromium(["--hide-scrollbars", "--window-size=1400,2400", f"--screenshot={shot}",
                          report.as_uri()], tmp_path, "shot")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    keep = os.environ.get("REPORT_SCREENSHOT")  # a path to keep the screenshot at, to look at it
    if keep:
        shutil.copy(shot, keep)
    no_chromium_left(already)

