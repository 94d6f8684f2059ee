"""`bench.py load-worker --master HOST:PORT` and `run --remote-load-workers K --master-bind HOST:PORT`.

Only tested on this machine: the "remote" load worker is a separate local process pointed at
127.0.0.1. Unit tests on constructed data first; then one real cell with a load worker, one whose
worker never comes (bounded wait, clear error), and a load worker stopped mid-cell; none leaves a
process behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.answer import aggregate
from harness.data import address
from harness.data.matrix import ConfigError, make_config
from harness.judge import collect, resources
from harness.run import load_worker, remote
from harness.run.launch import free_port
from harness.run.sweep import run_sweep
from tests.test_reliability import Family

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------- input, no process

@pytest.mark.parametrize("text", ["nonsense", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":5600",
                                  "127.0.0.1:56x", "h:1/path", "user@h:1"])
def test_bad_addresses_are_refused(text):
    with pytest.raises(address.AddressError):
        address.parse_address(text, "--master")


def test_addresses():
    assert address.parse_address("loadhost:5600", "--master") == ("loadhost", 5600)
    assert address.parse_address("localhost:5600", "--master-bind", bind=True) == ("127.0.0.1", 5600)
    with pytest.raises(address.AddressError, match="IPv4"):  # ZeroMQ binds addresses, not names
        address.parse_address("loadhost:5600", "--master-bind", bind=True)


@pytest.mark.parametrize(("settings", "message"), [
    (dict(remote_load_workers=1), "needs --master-bind"),
    (dict(master_bind="127.0.0.1:5600"), "give both"),
    (dict(remote_load_workers=1, master_bind="127.0.0.1"), "expected HOST:PORT"),
    (dict(remote_load_workers=1, master_bind="10.0.0.1:5600"), "--allow-non-loopback"),
    # a launched target listens on loopback: workers on other machines could not reach it
    (dict(remote_load_workers=1, master_bind="10.0.0.1:5600", allow_non_loopback=True), "--url"),
    (dict(remote_load_workers=1, master_bind="10.0.0.1:5600", allow_non_loopback=True,
          url="http://127.0.0.1:8000"), "--url"),
])
def test_bad_remote_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        make_config("default", **settings)


def test_remote_settings_reach_every_cell():
    from harness.data.matrix import build_cells

    cfg = make_config("default", targets=["correct-async"], scenarios=["health"], workers=[1],
                      remote_load_workers=2, master_bind="127.0.0.1:5600", remote_wait=7.0)
    cell, = build_cells(cfg)
    assert (cell.knobs["remote_load_workers"], cell.knobs["master_bind"], cell.knobs["remote_wait"]) == \
        (2, "127.0.0.1:5600", 7.0)
    ok = make_config("default", url="http://10.1.2.3:8000", allow_non_loopback=True, paths=["/x"],
                     remote_load_workers=1, master_bind="0.0.0.0:5600")
    assert ok.master_bind == "0.0.0.0:5600"


def test_cli_bad_input_is_one_line_exit_2():
    for args in (["load-worker", "--master", "nonsense"], ["load-worker", "--master", "h:1", "--wait", "0"],
                 ["run", "--remote-load-workers", "1", "--master-bind", "1.2.3"]):
        proc = subprocess.run([sys.executable, "bench.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ---------------------------------------------------------------------------- constructed data

def test_window_cpu_from_a_workers_own_samples():
    samples = [(10.0, 1.0), (11.0, 1.5), (12.0, 2.5), (13.0, 2.5)]
    assert resources.window_cpu_pct(samples, 10.5, 12.0) == pytest.approx(100 * 1.25 / 1.5)
    assert resources.window_cpu_pct(samples, 9.0, 12.0) != resources.window_cpu_pct(samples, 9.0, 12.0)  # NaN
    # a worker on a clock 100 s behind: moved onto the master's before the window is cut
    behind = [(t - 100.0, c) for t, c in samples]
    assert resources.window_cpu_pct(behind, 10.5, 12.0, shift=100.0) == pytest.approx(100 * 1.25 / 1.5)


def test_the_busiest_load_worker_counts():
    cpu = lambda pct: [(0.0, 0.0), (10.0, pct / 10)]  # noqa: E731 - pct % of a core over 10 s
    info = {"load_workers": 2, "records_lost": 3, "remote_load_workers": 1, "workers": {
        "a": {"remote": False, "cpu": cpu(40), "clock_offset_s": 0.0},
        "b": {"remote": True, "cpu": [(t - 50, c) for t, c in cpu(95)], "clock_offset_s": 50.0}}}
    stats = collect.load_worker_stats(info, 2.0, 8.0)
    assert stats["load_worker_cpu_max_pct"] == pytest.approx(95.0)
    assert (stats["records_lost"], stats["load_workers"], stats["remote_load_workers"]) == (3, 2, 1)


def test_hub_hands_each_cell_to_k_workers(tmp_path):
    hub = remote.Hub("127.0.0.1", free_port(), expected=1, wait_s=5)
    hub.start()
    try:
        ask = lambda who: httpx.get(f"http://{hub.address}/cell", params={"worker": who}).json()  # noqa: E731
        assert ask("a")["state"] == "wait"
        hub.open_cell("c1", 6000, {"BENCH_PATH": "/x", "BENCH_RECORD": "/secret", "PYTHONPATH": "/evil"},
                      [remote.SCENARIOS / "path.py"])
        cell = ask("a")
        assert (cell["state"], cell["cell"], cell["locust_port"]) == ("cell", "c1", 6000)
        assert cell["env"] == {"BENCH_PATH": "/x"}  # only the scenario files' settings travel
        assert load_worker.resolve_files(cell, None) == [remote.SCENARIOS / "path.py"]
        assert ask("b")["state"] == "wait" and hub.joined() == 1  # K = 1: the cell is full
        hub.close_cell()
        assert ask("a")["state"] == "wait"
        (tmp_path / "mine.py").write_text("x = 1\n")
        hub.open_cell("c2", 6001, {}, [remote.SCENARIOS / "probe.py", tmp_path / "mine.py"])
        cell = ask("b")
        with pytest.raises(load_worker.WorkerError, match="--locustfile"):
            load_worker.resolve_files(cell, None)
        other = tmp_path / "other.py"
        other.write_text("x = 2\n")
        with pytest.raises(load_worker.WorkerError, match="differs"):
            load_worker.resolve_files(cell, other)
        assert load_worker.resolve_files(cell, tmp_path / "mine.py")[1] == tmp_path / "mine.py"
        cell["base_sha256"] = "0" * 64
        with pytest.raises(load_worker.WorkerError, match="same version"):
            load_worker.resolve_files(cell, tmp_path / "mine.py")
    finally:
        hub.stop(linger_s=0.1)


# ----------------------------------------------------------------------------- real processes

def _load_worker(port: int, log_dir: Path, wait: float = 60.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "bench.py", "load-worker", "--master", f"127.0.0.1:{port}",
                             "--wait", str(wait), "--log-dir", str(log_dir)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _cfg(port: int, **kw):
    return make_config("default", targets=["correct-async"], scenarios=["health"], workers=[1], users=[8],
                       duration=2.0, warmup=1.0, adapt_window=False, remote_load_workers=1,
                       master_bind=f"127.0.0.1:{port}", **kw)


def test_a_load_worker_joins_and_its_records_are_merged(tmp_path):
    port = free_port()
    with Family() as fam:
        worker = _load_worker(port, tmp_path / "lw")
        try:
            assert run_sweep(_cfg(port), tmp_path / "run", preset="default", measure_upstream=False) == 0
            out, _ = worker.communicate(timeout=30)  # the run is over: the worker leaves by itself
        finally:
            worker.kill()
        assert worker.returncode == 0, out
        assert "joined cell correct-async_health" in out and "the run is over" in out
        assert fam.survivors() == []  # master, local worker, the load worker and its Locust worker
    row = aggregate.load_results(tmp_path / "run").iloc[0]
    assert row["status"] == "ok", row["error"]
    raw = tmp_path / "run" / row["raw_dir"]
    info = json.loads((raw / "requests.csv.info").read_text())
    assert (info["load_workers"], info["remote_load_workers"], info["records_lost"]) == (2, 1, 0)
    by_worker = {w["remote"]: w["records"] for w in info["workers"].values()}
    assert by_worker[True] > 0 and by_worker[False] > 0
    # requests.csv is the union of both workers' exact records; the row's percentiles come from it
    with open(raw / "requests.csv") as fh:
        assert sum(1 for _ in fh) - 1 == by_worker[True] + by_worker[False]
    assert 0 < row["requests"] < by_worker[True] + by_worker[False]  # the window is part of the run
    assert row["p50_ms"] <= row["p99_ms"]
    remote_worker, = [w for w in info["workers"].values() if w["remote"]]
    assert len(remote_worker["cpu"]) >= 4  # its own CPU samples reached the master for the guard
    assert row["locust_cpu_max_pct"] > 0


def test_a_cell_whose_load_worker_never_comes_fails_in_bounded_time(tmp_path):
    port = free_port()
    with Family() as fam:
        started = time.monotonic()
        assert run_sweep(_cfg(port, remote_wait=2.0), tmp_path / "run", preset="default",
                         measure_upstream=False) == 1
        took = time.monotonic() - started
        assert fam.survivors() == []
    row = aggregate.load_results(tmp_path / "run").iloc[0]
    assert row["status"] == "failed"
    assert "only 0 of 1 remote load worker(s) came to 127.0.0.1" in row["error"]
    assert took < 60  # the wait is bounded (2 s here), not Locust's default of forever


def test_a_stopped_load_worker_leaves_no_locust_behind(tmp_path):
    hub = remote.Hub("127.0.0.1", free_port(), expected=1, wait_s=30)
    hub.start()
    try:
        # A cell whose master never listens: the load worker's Locust worker keeps trying to connect.
        hub.open_cell("lonely", free_port(), {}, [remote.SCENARIOS / "health.py"])
        with Family() as fam:
            worker = _load_worker(hub.port, tmp_path / "lw")
            deadline = time.monotonic() + 30
            while not fam.running("--worker") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert fam.running("--worker"), "the load worker never started its Locust worker"
            worker.send_signal(signal.SIGTERM)
            out, _ = worker.communicate(timeout=30)
            assert worker.returncode == 143, out
            assert fam.survivors() == []
    finally:
        hub.stop(linger_s=0.1)


def test_a_load_worker_without_a_run_gives_up(tmp_path):
    worker = _load_worker(free_port(), tmp_path / "lw", wait=1.0)
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 1 and "no run answered" in out
