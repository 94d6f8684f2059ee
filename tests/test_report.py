"""report.html from run folders alone, parsed with html.parser: sections, self-containment, tables."""

from __future__ import annotations

import base64
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from harness import cli
from harness.answer import claims, evidence
from harness.present import html_report, report

RUN_V1 = Path(__file__).parent / "data" / "run_v1"  # a folder written before report.html existed
# The report's order: the answer first, "what was run" collapsed near the end.
SECTIONS = ["answer-h", "verdicts-h", "charts", "recommendations", "untrusted", "bounds", "run", "results-h"]


class Page(HTMLParser):
    """Collects what the tests look at: headings' ids, tags with URLs, tables' rows, text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.h2_ids: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.text: list[str] = []
        self._table: list[str] = []
        self._row: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "h2":
            self.h2_ids.append(a.get("id") or "")
        elif tag == "table":
            self._table.append(a.get("id") or "")
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "table" and self._table:
            self._table.pop()
        elif tag == "tbody":
            self._in_body = False
        elif tag == "tr" and self._row is not None:
            self.rows.setdefault(self._table[-1] if self._table else "", []).append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None and self._row:
            self._row[-1] += data


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    run = tmp_path / "run_v1"
    shutil.copytree(RUN_V1, run)
    return run


def test_report_on_a_run_folder_from_before_reports_existed(old_run: Path, capsys):
    assert cli.main(["report", str(old_run)]) == 0
    out = capsys.readouterr().out
    assert f"report: {old_run / 'report.html'}" in out and "claim" in out.splitlines()[0]
    page = parse(old_run / "report.html")
    assert page.h2_ids == SECTIONS  # every section, in the order
    text = " ".join(page.text)
    # Sections the old folder cannot fill say so.
    # No recommend.csv: the rule is applied in memory at its default SLO, and the report says so.
    assert "this folder has no recommend.csv" in text and not (old_run / "recommend.csv").exists()
    picks = page.rows["recommend"]
    assert picks and {r[0] for r in picks} <= {"use this", "no configuration meets the SLO; closest"}
    assert "no database in this run" in text
    assert "not available: this run predates bottleneck attribution" in text
    assert "upstream" in text and "18902" in text  # its meta.json did record the upstream capacity
    # Charts were drawn from results.csv (the folder had none) and inlined; beside them, each measured
    # claim's evidence chart sits in its verdict row.
    imgs = [a for t, a in page.tags if t == "img"]
    grid = [a for a in imgs if a.get("class") != "claim-chart"]
    assert len(grid) == 2 == len(list((old_run / "charts").glob("*.png")))
    measured = [v.claim for v in claims.decide_run(old_run) if v.verdict != evidence.NOT_MEASURED]
    assert [a["alt"] for a in imgs if a.get("class") == "claim-chart"] == [
        f"evidence for claim {c}" for c in measured] and measured
    assert text.count(html_report.READING_GUIDE[0]) == 2  # the reading guide under each chart
    # Tables: one verdict row per claim, one results row per results.csv row.
    verdicts = page.rows["verdicts"]
    assert [r[0] for r in verdicts] == [c.id for c in claims.REGISTRY]
    assert all(r[2] in evidence.VERDICTS for r in verdicts)
    assert len(page.rows["results"]) == len(pd.read_csv(old_run / "results.csv"))
    assert len(page.rows["failed"]) == 2 and len(page.rows["invalid"]) == 1
    assert "target did not become ready" in " ".join(" ".join(r) for r in page.rows["failed"])
    assert (old_run / "claims.csv").is_file()
    # The answer, from the old folder: one table per workload, every target ranked or told why not.
    answers = {k: v for k, v in page.rows.items() if k.startswith("answer-")}
    targets = set(pd.read_csv(old_run / "results.csv")["target"])
    assert answers and all({r[1] for r in rows} == targets for rows in answers.values())
    assert "winner: " in text or "cannot decide" in text
    # "What was run" is collapsed, its values plain text (no Python or JSON reprs).
    assert any(t == "details" and a.get("id") == "run-details" for t, a in page.tags)
    knob_values = [r[0] for r in page.rows["knobs"]]  # (the name is a th)
    assert knob_values and not any(v.startswith(("[", "{")) or v in ("None", "null") for v in knob_values)


def test_report_is_self_contained(old_run: Path):
    html_report.write(old_run)
    page = parse(old_run / "report.html")
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object"), tag
        for key in ("src", "href"):
            url = attrs.get(key)
            if url is not None:
                assert url.startswith("data:image/png;base64,"), url[:80]
                png = base64.b64decode(url.split(",", 1)[1])
                assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_shows_recommend_csv_and_marks_missing_meta(old_run: Path):
    from harness.answer import recommend

    recommend.run(old_run, slo_p99_ms=600.0, say=lambda _: None)  # writes recommend.csv
    (old_run / "meta.json").unlink()
    html_report.write(old_run)
    page = parse(old_run / "report.html")
    text = " ".join(page.text)
    assert "SLO: p99 ≤ 600 ms" in text and "from recommend.csv" in text
    written = pd.read_csv(old_run / "recommend.csv")
    assert len(page.rows["recommend"]) == written["group"].nunique()
    assert len(page.rows["recommend-all"]) == len(written)
    assert "meta.json is missing or unreadable" in text
    # Without meta.json the core count is unknown: claims that need it say why.
    four = next(r for r in page.rows["verdicts"] if r[0] == "4")
    assert four[2] == evidence.NOT_MEASURED and "cores" in four[3]


def test_report_needs_results(tmp_path: Path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "results.csv not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cell_names_in_the_terminal_lists_carry_the_swept_knobs():
    """Two cells of a pool sweep, one invalid: its line must say which pool size it was."""
    df = pd.DataFrame({"target": ["thread-pool"] * 2, "scenario": ["io"] * 2, "workers": [1, 1],
                       "users": [32, 32], "pool_size": [4.0, 40.0], "rate": [float("nan")] * 2,
                       "loop": ["uvloop"] * 2})
    assert report.cell_name(df.iloc[1], df) == "thread-pool io workers=1 users=32 pool_size=40"
    assert report.cell_name(df.iloc[0], df.iloc[:1]) == "thread-pool io workers=1 users=32"  # nothing swept
