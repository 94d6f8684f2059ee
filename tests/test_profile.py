"""--profile for real: py-spy attached to a real uvicorn worker during a short cell, and a py-spy
that cannot attach. Nothing may outlive either test (py-spy included)."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import pandas as pd

from harness.answer import aggregate
from harness.data.matrix import make_config
from harness.run.profile import Profiler
from harness.run.sweep import run_sweep
from tests.conftest import leftover_children


def test_profile_samples_a_real_worker_and_leaves_nothing_running(tmp_path):
    cfg = make_config("smoke", targets=["correct-async"], scenarios=["io"], workers=[1], users=[8],
                      duration=2.0, warmup=0.5)
    run_dir = tmp_path / "run"
    already = {p.pid for p in leftover_children()}
    assert run_sweep(cfg, run_dir, preset="smoke", measure_upstream=False, profile="*") == 0
    assert leftover_children(exclude=already) == []

    row = aggregate.load_results(run_dir).iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["profiled"] and row["bound_by"]
    detail = row["bound_detail"]
    assert "profile of worker" in detail and " samples: self time " in detail, detail
    assert "by package " in detail
    svg = run_dir / row["profile_svg"]
    frames = [t.text for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}title")]
    # the worker's own code is in the samples: uvicorn's loop runner at least
    assert len(frames) > 5 and any("uvicorn" in f for f in frames), frames[:5]
    stacks = (run_dir / row["raw_dir"] / "profile.txt").read_text()
    assert stacks.strip() and all(line.rsplit(" ", 1)[-1].isdigit() for line in stacks.splitlines())
    assert 0 < row["worker_cpu_max_pct"] <= row["target_cpu_pct"] + 1
    assert pd.isna(row["pool_cpu_pct"]) or row["pool_cpu_pct"] == 0  # correct-async has no pool


def test_py_spy_that_cannot_attach_is_said_not_raised(tmp_path):
    already = {p.pid for p in leftover_children()}
    not_python = subprocess.Popen(["sleep", "30"])
    try:
        result = Profiler(not_python.pid, 1.0, tmp_path).finish()
    finally:
        not_python.kill()
        not_python.wait()
    assert result.svg is None
    head = f"profile of worker {not_python.pid} not taken: py-spy could not attach ("
    assert result.summary.startswith(head), result.summary
    assert "Error" in result.summary and "backtrace" not in result.summary
    assert leftover_children(exclude=already) == []
