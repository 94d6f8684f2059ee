"""Claims 11 (the article's client) and 12 (silent blocking) decided on constructed runs, and the
per-claim evidence charts: they hold exactly the cells the rule read, with its thresholds, and a
chart is never drawn with an empty panel. Nothing is launched."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from harness.answer import chart_data, claims, evidence
from harness.present import claim_charts
from tests.test_claims import repeats, row, run_of, verdict


def _client_rows(httpx_rps: list[float], aiohttp_rps: list[float], ceiling: float = 500.0) -> list[dict]:
    out = []
    for client, values in (("httpx", httpx_rps), ("aiohttp", aiohttp_rps)):
        for r in repeats("correct-async", "io", values, http_client=client, ceiling_rps=ceiling,
                         worker_cpu_max_pct=99.0 if client == "httpx" else 80.0):
            r["efficiency"] = r["rps"] / ceiling
            out.append(r)
    return out


@pytest.mark.parametrize(("httpx_rps", "aiohttp_rps", "expected"), [
    # 5 repeats a side (claims.DIFF_REPEATS): 3 vs 3 cannot reach p ≤ 5% in the permutation test
    ([220, 225, 230, 235, 240], [450, 455, 460, 465, 470], evidence.FAILS),  # httpx 46%, aiohttp 92%
    ([420, 425, 430, 435, 440], [425, 430, 435, 440, 445], evidence.HOLDS),  # httpx 86%, aiohttp not faster
    ([220, 225, 230, 235, 240], [225, 230, 235, 236, 238], evidence.PARTLY),  # both short: another limit
])
def test_claim_11_says_whether_the_client_is_the_limit(httpx_rps, aiohttp_rps, expected):
    v = verdict("11", _client_rows(httpx_rps, aiohttp_rps))
    assert v.verdict == expected, v
    assert "httpx" in v.evidence[0] and "aiohttp" in v.evidence[0] and "% of ceiling" in v.evidence[0]
    assert "(5 vs 5 repeats)" in v.evidence[0]  # what the noise rule rested on, in compare's words
    if expected == evidence.FAILS:
        assert "the client is the limit" in v.condition
    # The chart holds the two cells the rule compared, medians as drawn bars with every repeat the
    # permutation test read, the 70% and +10% lines, and the test's p over aiohttp's bar.
    rps = v.chart.panels[0]
    assert [(p.series, p.y) for p in rps.points] == [("httpx", httpx_rps[2]), ("aiohttp", aiohttp_rps[2])]
    assert [(p.lo, p.hi) for p in rps.points] == [(httpx_rps[0], httpx_rps[-1]),
                                                  (aiohttp_rps[0], aiohttp_rps[-1])]
    assert [sorted(p.values) for p in rps.points] == [httpx_rps, aiohttp_rps]
    assert any(t.y == pytest.approx(0.7 * 500) for t in rps.thresholds)
    assert any(t.y == pytest.approx(1.1 * httpx_rps[2]) for t in rps.thresholds)
    [note] = rps.notes
    assert note.at == rps.points[1].x and note.text.startswith("p = ")
    assert ("≤ 5%" in note.text) == (expected == evidence.FAILS)


def test_claim_11_at_3_vs_3_says_its_repeats_cannot_show_a_difference():
    v = verdict("11", _client_rows([220, 230, 240], [450, 460, 470]))
    assert v.verdict == evidence.PARTLY  # not "the client is the limit": 3 vs 3 cannot reach p ≤ 5%
    assert "3 vs 3 repeats cannot show a difference at 5%" in v.evidence[0]
    assert [n.text for n in v.chart.panels[0].notes] == ["3 vs 3: cannot show"]


def test_claim_11_not_measured_without_aiohttp():
    v = verdict("11", repeats("correct-async", "io", [220, 230, 240]))
    assert v.verdict == evidence.NOT_MEASURED and "aiohttp" in v.condition and v.chart is None


def _blocking_rows(users_fail_p50_lag: list[tuple[int, float, float, float]]) -> list[dict]:
    return [row("fake-async", "io", 6.5, users=u, fail_ratio=f, p50_ms=p50, loop_lag_p99_ms=lag)
            for u, f, p50, lag in users_fail_p50_lag]


# rps 6.5, ceiling 7.2 (the helper's 90%): expected queue U=2 0.28 s, U=6 0.83 s (silent band, ≤ 1 s),
# U=12 1.66 s and U=32 4.4 s and U=64 8.9 s (between: read by nothing), U=96 13.3 s (past the timeout).
@pytest.mark.parametrize(("cells", "expected"), [
    ([(2, 0.0, 300, 70), (6, 0.0, 900, 800), (96, 0.6, math.nan, 9000)], evidence.HOLDS),
    # the cells between go either way without moving the verdict
    ([(2, 0.0, 300, 70), (6, 0.0, 900, 800), (12, 0.03, 1400, 3400), (32, 0.24, 4900, 4800),
      (96, 0.6, math.nan, 9000)], evidence.HOLDS),
    ([(2, 0.0, 300, 70), (6, 0.0, 900, 800), (32, 0.0, 4900, 4800), (96, 0.6, math.nan, 9000)],
     evidence.HOLDS),
    ([(2, 0.0, 300, 70), (6, 0.0, 900, 800), (64, 0.0, 9500, 9000)], evidence.PARTLY),  # never timed out
    ([(2, 0.0, 300, 70), (6, 0.0, 900, 800), (96, 0.0, 9500, 9000)], evidence.PARTLY),  # past it, silent
    ([(2, 0.2, 300, 70), (6, 0.3, 900, 800), (96, 0.6, math.nan, 9000)], evidence.FAILS),
    ([(2, 0.0, 300, 70), (6, 0.0, 330, 80), (96, 0.6, math.nan, 9000)], evidence.FAILS),  # no growth
    ([(2, 0.0, 300, 70), (32, 0.0, 4900, 4800), (96, 0.6, math.nan, 9000)], evidence.PARTLY),  # one quiet
])
def test_claim_12_silent_until_the_client_timeout(cells, expected):
    v = verdict("12", _blocking_rows(cells))
    assert v.verdict == expected, v
    # No target offers a server-side timeout: the verdict says so instead of inventing one.
    assert any("no target offers a server-side request timeout" in e for e in v.evidence)
    assert "U=2 (queue ≈ 0.28 s, silent)" in v.evidence[0], v.evidence[0]  # the margin each cell had
    lat, failed = v.chart.panels
    assert [p.xval for p in failed.points] == [c[0] for c in cells]
    assert [p.y for p in failed.points] == [100 * c[1] for c in cells]
    assert any(t.label == "client timeout" and t.y == 10_000 for t in lat.thresholds)


def test_claim_12_reads_the_queue_from_the_ceiling_not_the_noise():
    from harness.answer.pitfall_deciders import expected_queue_s

    rows = _blocking_rows([(32, 0.0, 4900, 4800)])
    rows[0]["ceiling_rps"], rows[0]["rps"] = 6.7, 3.0  # a slow repeat does not move its band
    assert expected_queue_s(pd.Series(rows[0])) == pytest.approx(32 / 6.7)
    rows[0]["ceiling_rps"] = math.nan  # no ceiling: Little's law on the measured rate
    assert expected_queue_s(pd.Series(rows[0])) == pytest.approx(32 / 3.0)


def test_claim_12_needs_three_user_counts():
    v = verdict("12", _blocking_rows([(4, 0.0, 600, 140), (32, 0.0, 4900, 4800)]))
    assert v.verdict == evidence.NOT_MEASURED


def test_claim_1_chart_is_the_two_cells_with_the_two_fold_lines():
    rows = repeats("correct-async", "io", [180, 185, 190]) + repeats("fake-async", "io", [6.5, 6.6, 6.7],
                                                                    health_p99_ms=2100.0)
    v = verdict("1", rows)
    rps, health = v.chart.panels
    assert [p.series for p in rps.points] == ["correct-async", "fake-async"]
    assert [p.y for p in rps.points] == [185, 6.6]
    assert [t.y for t in rps.thresholds] == [pytest.approx(2 * 6.6)]
    assert rps.thresholds[0].at == ("correct-async",)
    assert [p.y for p in health.points] == [5.0, 2100.0]
    assert [t.y for t in health.thresholds] == [pytest.approx(10.0)]


def test_claim_8_chart_marks_the_knee_on_the_pool_line():
    rows = []
    for pool, rps, mem in ((1, 50, 60), (2, 98, 70), (4, 99, 90), (8, 100, 130)):
        rows += repeats("process-pool", "cpu", [rps], pool_size=pool, target_rss_mb=mem)
    v = verdict("8", rows)
    line, mem = v.chart.panels
    assert line.kind == "line" and [p.xval for p in line.points] == [1, 2, 4, 8]
    assert line.marks == [(2.0, "knee")] and mem.marks == [(2.0, "knee")]
    assert [p.y for p in mem.points] == [60, 70, 90, 130]


def _plan_run() -> evidence.Run:
    rows = [row("correct-async", "io", 185, http_client=c) for c in ("httpx", "aiohttp")]
    rows += repeats("fake-async", "io", [6.6])
    return run_of(rows)


def test_every_measured_verdict_draws_only_panels_with_measured_points():
    verdicts = claims.decide(_plan_run())
    drawn = 0
    for v in verdicts:
        if v.verdict == evidence.NOT_MEASURED:
            assert claim_charts.img_tag(v) == ""
            continue
        fig = claim_charts.draw(v.chart)
        assert fig is not None, v.claim
        for ax, panel in zip(fig.axes, v.chart.drawable(), strict=True):
            assert panel.measured()
            # bars drawn = measured points (patches), or one marker per measured point on a line
            shown = len(ax.patches) if panel.kind == "bars" else sum(
                len(ln.get_xdata()) for ln in ax.lines if ln.get_marker() == "o")
            assert shown == len(panel.measured()), (v.claim, panel.title)
        plt.close(fig)
        drawn += 1
    assert drawn >= 3  # claims 1, 2 and 11 have their cells in this run


def test_a_panel_without_a_measured_point_is_not_drawn():
    empty = chart_data.Panel("nothing", "ms", [chart_data.value_point(math.nan, "a")])
    full = chart_data.Panel("something", "ms", [chart_data.value_point(3.0, "b")])
    fig = claim_charts.draw(chart_data.Chart([empty, full]))
    assert fig is not None and len(fig.axes) == 1 and fig.axes[0].get_title() == "something"
    plt.close(fig)
    assert claim_charts.draw(chart_data.Chart([empty])) is None


def test_report_puts_each_measured_verdicts_chart_in_its_row(tmp_path):
    import re

    from harness.present import html_report
    from tests.run_folders import row as folder_row
    from tests.run_folders import write_run

    rows = [folder_row(target="correct-async", scenario="io", rps=185.0, p50_ms=170.0, ceiling_rps=200.0,
                       efficiency=0.92, http_client=c, fanout=3, io_ms=50, repeat=1)
            for c in ("httpx", "aiohttp")]
    rows.append(folder_row(target="fake-async", scenario="io", rps=6.6, p50_ms=4800.0, ceiling_rps=6.7,
                           efficiency=0.98, fanout=3, io_ms=50, health_p99_ms=2100.0, repeat=1))
    run_dir = write_run(tmp_path / "run", rows, {"preset": "claims", "cores_available": 2})
    page = html_report.write(run_dir).read_text()
    verdicts = claims.decide_run(run_dir)
    for v in verdicts:
        tr = re.search(rf'<tr id="claim-{v.claim}">(.*?)</tr>', page, re.S)
        assert tr is not None
        has_img = f'alt="evidence for claim {v.claim}" src="data:image/png;base64,' in tr.group(1)
        assert has_img == (v.verdict != evidence.NOT_MEASURED), (v.claim, v.verdict)
    assert not (run_dir / "charts").exists()  # a claims run draws no per-scenario grid
    assert "one evidence chart per claim" in page


# ------------------------------------------------------- the noise rule as the verdict applied it


def test_a_duel_with_repeats_writes_the_tests_p_and_draws_every_repeat_not_a_line():
    # 5 vs 5 (claims.DIFF_REPEATS): evidence.compare runs the permutation test, which has no line.
    rows = (repeats("correct-async", "io", [520, 510, 530, 525, 515], loop="uvloop")
            + repeats("correct-async", "io", [460, 470, 450, 465, 455], loop="asyncio"))
    v = verdict("7", rows)
    assert v.verdict == evidence.HOLDS, v
    [panel] = v.chart.panels
    assert panel.thresholds == []
    assert [(n.at, n.text) for n in panel.notes] == [("uvloop", "p = 0.0079 ≤ 5%")]
    assert [sorted(p.values) for p in panel.points] == [[510, 515, 520, 525, 530], [450, 455, 460, 465, 470]]
    fig = claim_charts.draw(v.chart)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "p = 0.0079 ≤ 5%" in texts
    dots = [ln for ln in fig.axes[0].lines if ln.get_marker() == "."]
    assert sum(len(ln.get_xdata()) for ln in dots) == 10  # every repeat the test read
    plt.close(fig)


def test_a_duel_of_single_repeats_draws_the_margin_line():
    rows = repeats("correct-async", "io", [520], loop="uvloop") + repeats("correct-async", "io", [460],
                                                                           loop="asyncio")
    [panel] = verdict("7", rows).chart.panels
    assert [(t.y, t.at) for t in panel.thresholds] == [(pytest.approx(460 * 1.1), ("uvloop",))]
    assert panel.notes == []


def test_claim_21_chart_sets_each_server_against_uvicorn_with_the_noise_band():
    from tests.test_servers import _server_rows

    v = verdict("21", _server_rows({"uvicorn": 2000, "granian": 3000}, {"uvicorn": 95, "granian": 96}))
    framework, work = v.chart.panels
    assert "framework-bound" in framework.title and "work-bound" in work.title
    assert [(p.series, p.y) for p in framework.points] == [("uvicorn", 2000), ("granian", 3000)]
    assert [(p.series, p.y) for p in work.points] == [("uvicorn", 95), ("granian", 96)]
    [band] = work.bands
    assert (band.lo, band.hi) == (pytest.approx(95 / 1.1), pytest.approx(95 * 1.1))
    assert band.at == (work.points[1].x,) and "uvicorn" in band.label
    fig = claim_charts.draw(v.chart)
    assert fig is not None and len(fig.axes) == 2
    plt.close(fig)


def test_every_claim_of_a_run_shaped_like_the_preset_draws_a_chart_with_measured_points():
    """The plan's own cells (measures made up): every verdict row gets a chart, no panel is empty and
    no two cells share a bar (claims 7 and 11 add cells at claim 2's W and U)."""
    import numpy as np

    from harness import claims_preset
    from tests.test_claims import CORES

    rows = []
    for c in claims_preset.plan(CORES):
        rps = c.ceiling_rps * 0.8 if math.isfinite(c.ceiling_rps) else 2000.0
        params = {k: (np.nan if v is None else v) for k, v in c.params().items()
                  if k not in ("target", "scenario")}
        rows.append(row(c.target, c.scenario, rps * (1 + 0.01 * c.repeat), **params,
                        health_p99_ms=600.0 if c.scenario == "cpu" else 8.0, loop_lag_p99_ms=c.users * 10.0,
                        fail_ratio=0.5 if c.users > 64 else 0.0, p50_ms=min(c.users, 32) / rps * 1000,
                        efficiency=0.8, target_rss_mb=50.0 + 10 * (c.pool_size or 0)))
        if c.scenario == "db":
            rows[-1].update(db_pool_wait_p50_ms=0.8 * rows[-1]["p50_ms"] if c.knobs["db_pool"] == 2 else 1.0,
                            loop_lag_p99_ms=1.0)
    for v in claims.decide(run_of(rows)):
        if claims.BY_ID[v.claim].preset:  # decided from another preset's run (claim 21: servers)
            assert v.verdict == evidence.NOT_MEASURED, v
            continue
        assert v.verdict != evidence.NOT_MEASURED, v
        assert v.chart is not None and v.chart.drawable(), v.claim
        for panel in v.chart.drawable():
            xs = [p.x for p in panel.points if panel.kind == "bars"]
            assert len(xs) == len(set(xs)), (v.claim, panel.title, xs)
        assert claim_charts.img_tag(v).startswith('<img class="claim-chart"'), v.claim
