"""The probe's writer thread (targets/probe.py): few wake-ups on a healthy loop, stack samples on a
stalled one, each stack written once per file, and a full disk that costs lines, never the worker."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from harness.judge import collect, stalls
from targets.probe import HEARTBEAT_S, WorkerProbe
from targets.stall_sampler import Watchdog

FULL = Path("/dev/full")  # every write fails with ENOSPC, as on a full disk


async def _run(probe: WorkerProbe, seconds: float, block_s: float = 0.0) -> None:
    probe.mark_ready()
    probe.start()
    try:
        await asyncio.sleep(seconds / 2)
        if block_s:
            time.sleep(block_s)  # the loop blocked: only the writer thread runs
        await asyncio.sleep(seconds / 2)
    finally:
        await probe.stop()


@pytest.mark.skipif(sys.platform != "linux", reason="timerfd is Linux's")
def test_a_healthy_loop_never_wakes_the_writer(tmp_path):
    probe = WorkerProbe(str(tmp_path))
    asyncio.run(_run(probe, 1.0))
    # The timer the heartbeat re-arms never fired: the one wake-up is stop()'s. (The old writer looked
    # every 10 ms: 100 wake-ups a second, each taking the GIL from the loop.)
    assert probe.wakes <= 1, probe.wakes
    lines = collect.read_probe_file(probe.path)
    assert len([r for r in lines if "lag_ms" in r]) >= 4  # the heartbeat wrote its own lines, 4 a second
    assert all(not r["_stalls"] for r in lines)
    assert sum(len(r.get("lag_ms", [])) for r in lines) >= 0.5 / HEARTBEAT_S  # the heartbeat itself ran


def test_without_a_timer_the_writer_wakes_every_few_heartbeats(tmp_path, monkeypatch):
    monkeypatch.setattr(Watchdog, "available", property(lambda self: False))
    probe = WorkerProbe(str(tmp_path))
    asyncio.run(_run(probe, 1.0))
    # sleeping until the pending heartbeat would be 20 ms late: one wake-up per 20-30 ms, not per 10 ms
    assert 20 <= probe.wakes <= 60, probe.wakes


@pytest.mark.parametrize("timer", [True, False])
def test_a_stalled_loop_is_sampled_and_names_the_blocking_call(tmp_path, monkeypatch, timer):
    if not timer:
        monkeypatch.setattr(Watchdog, "available", property(lambda self: False))
    probe = WorkerProbe(str(tmp_path))
    asyncio.run(_run(probe, 0.4, block_s=0.3))
    lines = collect.read_probe_file(probe.path)
    samples = [x for r in lines for x in r["_stalls"]]
    total = sum(n for _, n in samples)
    # 300 ms blocked: sampled from 20 ms late on, one sample every 10 ms, the first only starts the clock
    assert 15 <= total <= 30, total
    assert sum(len(r.get("stacks", {})) for r in lines) == len({k for k, _ in samples})  # each stack once
    found = stalls.reduce(samples, window_s=0.4, workers=1)
    assert found.site.startswith("test_probe_writer.py:") and found.site.endswith("in _run → time.sleep")


def test_a_full_disk_drops_lines_and_the_next_line_starts_afresh(tmp_path):
    probe = WorkerProbe(str(tmp_path))
    probe.mark_ready()
    real = probe.path
    key = "/x\twait\t/app/x.py:f:3"
    probe._sampler = _Samples({key: 4})
    probe._flush()  # stack 0 defined and counted
    probe.path = FULL
    probe._sampler = _Samples({key: 2, key + "0": 5})
    probe._flush()  # refused: the new stack must be defined again in a later line
    assert probe.dropped_lines == 1 and probe._cut
    probe.path = real
    with open(real, "a") as fh:
        fh.write('{"pid": 1, "t": 1')  # what a disk filling up mid-line leaves
    probe._sampler = _Samples({key + "0": 3})
    probe._flush()
    assert not probe._cut
    lines = collect.read_probe_file(real)  # the cut line is skipped, not fatal
    assert [r.get("event") for r in lines][:1] == ["ready"] and len(lines) == 3
    assert [r["_stalls"] for r in lines[1:]] == [[(key, 4)], [(key + "0", 3)]]


def test_a_probe_file_of_an_earlier_probe_keys_stalls_by_the_stack(tmp_path):
    path = tmp_path / "worker-1.jsonl"
    key = "/x\tcpu\t/app/x.py:f:3"
    old = [{"pid": 1, "t": 1.0, "stalls": {key: 2}},
           {"pid": 1, "t": 2.0, "stalls": {"7": 1}}]  # an id never defined: dropped
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert [r["_stalls"] for r in collect.read_probe_file(path)] == [[(key, 2)], []]


class _Samples:
    """Stands in for the stall sampler: hands out the samples it was given once."""

    def __init__(self, samples: dict[str, int]) -> None:
        self.samples = samples

    def take(self) -> dict[str, int]:
        out, self.samples = self.samples, {}
        return out

    def sample(self, late_ms: float) -> None:
        pass


def test_mark_ready_on_a_full_disk_fails_the_start_up(tmp_path):
    """Start-up is different: a worker that cannot say it is ready fails to launch with the OSError,
    which names the disk (the harness's is_disk_error), rather than leaving the launcher waiting."""
    probe = WorkerProbe(str(tmp_path))
    probe.path = FULL
    with pytest.raises(OSError, match="No space left on device"):
        probe.mark_ready()
