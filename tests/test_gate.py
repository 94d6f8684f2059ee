"""The audit as a CI gate: exit codes from the verdict kinds, a JUnit file a CI parser reads, GitHub
annotations at the app's own file and line, the Markdown summary; then for real on the fixture app."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import junitparser
import pytest

from harness.answer import gate
from harness.present import ci_output, junit
from tests.conftest import leftover_children
from tests.test_audit_run import FIXTURE, ROOT, SHORT, _line_after, audit_rows, bench
from tests.test_report_browser import no_chromium_left, probe_page

ROWS = [
    {"route": "/items/sync", "workers": "1", "verdict": "fine at this load", "advice": "nothing to change",
     "stall_site": "", "valid": "True", "invalid_reason": "", "rps": "150"},
    {"route": "/items/blocking", "workers": "1", "verdict": "blocks the event loop",
     "advice": "move `time.sleep` at items.py:29 out of `async def`", "rps": "44",
     "stall_site": "items.py:29 in read_items_blocking → time.sleep", "valid": "False",
     "invalid_reason": "Locust at 99% of its core"},
    {"route": "/cpu", "workers": "1", "verdict": "limited by workers' CPU", "advice": "add workers",
     "stall_site": "", "valid": "True", "invalid_reason": ""},
    {"route": "/heroes/{hero_id}", "workers": "",
     "verdict": "skipped: path parameter 'hero_id' has no example",
     "advice": "", "stall_site": "", "valid": "", "invalid_reason": ""},
]


def test_exit_code_follows_the_fail_on_kinds():
    assert gate.exit_code(ROWS, ["blocks", "failing"]) == 1
    assert gate.exit_code(ROWS, ["failing"]) == 0
    assert [r["route"] for r in gate.failing(ROWS, ["blocks", "cpu"])] == ["/items/blocking", "/cpu"]
    last = gate.lines(ROWS, ["blocks"])
    assert last[0] == ("gate: FAIL /items/blocking W=1: blocks the event loop at items.py:29 in "
                       "read_items_blocking → time.sleep")
    assert last[-1].startswith("gate: failed, 1 of 3 measured")


def test_repeats_are_one_case_per_cell_failing_when_any_repeat_fails(tmp_path):
    fine, blocking, cpu, skipped = ROWS
    flaky = {**blocking, "verdict": "fine at this load", "stall_site": ""}
    rows = [fine, {**fine}, {**fine}, flaky, blocking, {**flaky}, cpu, skipped]  # --repeat 3
    cells = gate.per_cell(rows, ["blocks"])
    assert [c["route"] for c in cells] == ["/items/sync", "/items/blocking", "/cpu", "/heroes/{hero_id}"]
    assert cells[0]["repeats"] == "3 of 3 repeats" and "repeats" not in cells[2]
    assert cells[1]["verdict"] == "blocks the event loop" and cells[1]["repeats"] == "1 of 3 repeats"
    last = gate.lines(cells, ["blocks"])
    assert last[0].endswith("→ time.sleep (1 of 3 repeats)"), last
    assert last[-1].startswith("gate: failed, 1 of 3 measured cell(s)"), last
    path = junit.write(tmp_path / "a.xml", cells, ["blocks"], "app")
    suites = list(junitparser.JUnitXml.fromfile(str(path)))
    assert suites[0].tests == 4 and suites[0].failures == 1
    # another thread-token size is another cell
    other = {**fine, "thread_tokens": "80"}
    assert len(gate.per_cell([fine, other], ["blocks"])) == 2


def test_junit_parsed_by_junitparser_one_failure_one_skipped(tmp_path):
    path = junit.write(tmp_path / "audit.xml", ROWS, ["blocks", "failing"], suite="items:app")
    suites = list(junitparser.JUnitXml.fromfile(str(path)))
    assert len(suites) == 1 and suites[0].tests == 4 and suites[0].failures == 1 and suites[0].skipped == 1
    cases = {c.name: c for c in suites[0]}
    assert set(cases) == {"/items/sync W=1", "/items/blocking W=1", "/cpu W=1", "/heroes/{hero_id}"}
    (failure,) = cases["/items/blocking W=1"].result
    assert isinstance(failure, junitparser.Failure) and failure.type == "blocks"
    assert failure.message.startswith("blocks the event loop: move `time.sleep` at items.py:29")
    (skip,) = cases["/heroes/{hero_id}"].result
    assert isinstance(skip, junitparser.Skipped) and "hero_id" in skip.message
    assert cases["/items/sync W=1"].is_passed and cases["/cpu W=1"].is_passed


def test_annotations_at_the_apps_file_relative_to_the_repository(tmp_path):
    app = tmp_path / "svc" / "app"
    app.mkdir(parents=True)
    (app / "items.py").write_text("x = 1\n")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "items.py").write_text("")  # a library's namesake is not the app's file
    lines = ci_output.github_annotations(ROWS, ["blocks"], app_dir=tmp_path / "svc", root=tmp_path)
    assert lines[0] == ("::error file=svc/app/items.py,line=29,title=/items/blocking W=1%3A blocks::"
                        "blocks the event loop at items.py:29 in read_items_blocking → time.sleep: "
                        "move `time.sleep` at items.py:29 out of `async def`")
    assert lines[1].startswith("::warning title=/cpu W=1%3A cpu::limited by workers' CPU")
    assert len(lines) == 2  # fine and skipped rows say nothing


def test_markdown_summary_has_the_table_and_the_validity(tmp_path, monkeypatch):
    step = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    written = ci_output.write_summary(ROWS, ["blocks"], "items:app", tmp_path / "summary.md")
    assert written == [tmp_path / "summary.md", step]
    text = step.read_text()
    assert text.startswith("### fastapi-bench audit of `items:app`: 1 cell(s) failing (blocks)")
    row = next(line for line in text.splitlines() if "/items/blocking" in line)
    assert row.startswith("| **fail** | /items/blocking | 1 | blocks the event loop |")
    assert "no: Locust at 99% of its core" in row


def test_unknown_fail_on_kind_is_bad_input_with_the_list():
    done = bench("audit", "items:app", "--app-dir", FIXTURE, "--check", "--fail-on", "blocks,slow")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(
        "unknown verdict kind 'slow'; the kinds are: failing, blocks, lock, thread-pool, db-pool, cpu, fine")


def test_check_on_the_fixture_app_without_its_blocking_route_passes(tmp_path):
    xml = tmp_path / "audit.xml"
    done = bench("audit", "items:app", "--app-dir", FIXTURE, *SHORT, "--check", "--junit", str(xml),
                 "--out", str(tmp_path / "audit"), "--exclude", "/items/blocking",
                 env={"GITHUB_ACTIONS": "true"})
    lines = done.stdout.strip().splitlines()
    suite = next(iter(junitparser.JUnitXml.fromfile(str(xml))))
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[-1].startswith("gate: passed") and suite.failures == 0 and suite.skipped == 1
    assert "::error" not in done.stdout


def _documented_step() -> str:
    """The `audit every route` step's shell lines from docs/ci.md's workflow."""
    text = (ROOT / "docs" / "ci.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, flags=re.S).group(1)  # type: ignore[union-attr]
    step = block.split("- name: audit every route", 1)[1].split("- uses:", 1)[0]
    return "\n".join(line.strip() for line in step.split("run: |", 1)[1].splitlines() if line.strip())


@dataclass
class DocumentedRun:
    done: subprocess.CompletedProcess
    repo: Path
    summary: Path


@pytest.fixture(scope="module")
def documented_run(tmp_path_factory) -> DocumentedRun:
    """docs/ci.md's step, run once on a copy of the fixture app: the tests below read its outputs
    (one audit of the same app and flags, instead of one per test)."""
    tmp_path = tmp_path_factory.mktemp("documented")
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE, repo)
    summary = tmp_path / "step_summary.md"
    bench_py = shlex.quote(str(ROOT / "bench.py"))
    script = f'fastapi-bench() {{ {shlex.quote(sys.executable)} {bench_py} "$@"; }}\n'
    script += _documented_step()
    assert "fastapi-bench audit" in script
    done = subprocess.run(["bash", "-c", script], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "APP": "items:app", "GITHUB_ACTIONS": "true",
                               "GITHUB_STEP_SUMMARY": str(summary)})
    return DocumentedRun(done, repo, summary)


def test_the_documented_ci_step_on_the_fixture_app(documented_run):
    done, repo, summary = documented_run.done, documented_run.repo, documented_run.summary
    assert done.returncode == 1, done.stdout + done.stderr  # the fixture's blocking route fails the job
    line = _line_after(repo / "items.py", "async def read_items_blocking")
    assert f"::error file=items.py,line={line},title=/items/blocking W=1%3A blocks::" in done.stdout
    assert "| **fail** | /items/blocking | 1 | blocks the event loop |" in summary.read_text()
    assert (repo / "audit.md").read_text() == summary.read_text()
    suite = next(iter(junitparser.JUnitXml.fromfile(str(repo / "audit.xml"))))
    assert suite.tests == 3 and suite.failures == 1
    assert (repo / "audit-run" / "report.html").is_file() and (repo / "audit-run" / "audit.csv").is_file()


def test_check_names_the_line_last_and_the_report_is_about_the_app(documented_run):
    done, repo = documented_run.done, documented_run.repo
    lines = done.stdout.strip().splitlines()
    line = _line_after(repo / "items.py", "async def read_items_blocking")
    assert lines[-2] == (f"gate: FAIL /items/blocking W=1: blocks the event loop at items.py:{line} in "
                         "read_items_blocking → time.sleep")
    assert lines[-1].startswith("gate: failed, 1 of 3 measured cell(s)")
    assert "cannot decide" not in done.stdout  # an audit compares no patterns
    page = (repo / "audit-run" / "report.html").read_text()
    assert "cannot decide" not in page and "no charts in this run folder" not in page
    assert 'id="claims"' not in page and "<th>valid</th>" in page


def test_fixture_app_routes_found_and_told_apart(documented_run):
    done, repo = documented_run.done, documented_run.repo
    out = repo / "audit-run"
    rows = audit_rows(out)
    assert set(rows) == {"/items/sync", "/items/blocking", "/items/awaiting"}  # from the schema alone
    assert rows["/items/blocking"]["verdict"] == "blocks the event loop", rows["/items/blocking"]
    assert "async def" in rows["/items/blocking"]["advice"]
    assert rows["/items/blocking"]["source"] == "alone"  # --check screens first: flagged, then measured alone
    for route in ("/items/sync", "/items/awaiting"):
        assert rows[route]["verdict"] == "fine at this load", rows[route]
        if rows[route]["source"] == "alone":  # flagged by the screen, then cleared in its own cell
            assert float(rows[route]["rps"]) > float(rows["/items/blocking"]["rps"])
        else:  # cleared in the screen: its rps is its share of the window it shared with the blocking route
            assert rows[route]["source"] == "screen" and float(rows[route]["rps"]) > 0, rows[route]
    assert "wall time" in done.stdout and "route(s) to measure" in done.stdout
    # the stall sampler names the blocking call at its line, and the advice names it
    line = _line_after(repo / "items.py", "async def read_items_blocking")
    assert rows["/items/blocking"]["stall_site"] == f"items.py:{line} in read_items_blocking → time.sleep"
    assert rows["/items/blocking"]["advice"] == (
        f"move `time.sleep` at items.py:{line} out of `async def`: make the route `def`, or await an async "
        "client")
    assert rows["/items/sync"]["stall_site"] == rows["/items/awaiting"]["stall_site"] == ""
    page = (out / "report.html").read_text()
    assert page.index('id="audit"') < page.index('id="run"')  # the audit's table comes first
    assert page.count("blocks the event loop") >= 1
    assert f"items.py:{line} in read_items_blocking → time.sleep" in page


def test_audit_report_in_headless_chromium(documented_run, tmp_path: Path):
    """The report of docs/ci.md's audit of the fixture app, as a user opens it: about the app (here,
    beside the documented run's other readers, so that the module's one run serves it too)."""
    report = documented_run.repo / "audit-run" / "report.html"
    already = {p.pid for p in leftover_children()}
    seen, dom = probe_page(report, tmp_path)
    assert seen["problems"] == [], seen
    assert [line for line in dom.stderr.splitlines() if ":CONSOLE" in line] == []
    # The audit's table first, one row per route, with its validity; a chart for the screen's window
    # and one for the route it flagged (measured alone), every image loaded; the stall flame graphs
    # drawn; no pattern answer and no article claims.
    assert seen["first_section"] == "audit" and seen["audit_rows"] == 3, seen
    assert "valid" in seen["audit_heads"] and "measured" in seen["audit_heads"], seen
    assert seen["images"] == 2 and seen["loaded"] == 2, seen
    assert seen["flame_graphs"] == 2, seen  # the screen's window blocked too: its stalls, then the route's
    assert "answer-h" not in seen["sections"] and "verdicts-h" not in seen["sections"], seen
    assert seen["verdict_rows"] == 0 and seen["answer_rows"] == 0, seen
    no_chromium_left(already)
