"""procs: process groups stopped with nothing left behind; --pin core placement."""

from __future__ import annotations

import os
import sys
import time

import psutil
import pytest

from harness.system import procs

# A parent that ignores SIGTERM and forks a grandchild that also ignores it, then starts a new
# process group for the grandchild's child: the worst case stop_tree must still clean up.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], process_group=0)
print("up", flush=True)
time.sleep(60)
"""


def _wait_for_children(pid: int, n: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = procs.descendants(pid)
        if len(kids) >= n:
            return kids
        time.sleep(0.05)
    raise AssertionError("children did not start")


def test_stop_tree_kills_processes_that_ignore_sigterm():
    proc = procs.spawn([sys.executable, "-c", STUBBORN])
    kids = _wait_for_children(proc.pid, 2)
    procs.stop_tree(proc, grace=1.0)
    assert proc.poll() is not None
    assert not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)
    assert procs.session_members(proc.pid) == []


def test_stop_tree_finds_children_orphaned_by_a_dead_leader():
    proc = procs.spawn([sys.executable, "-c", STUBBORN])
    kids = _wait_for_children(proc.pid, 2)
    os.kill(proc.pid, 9)  # the leader dies; its children are re-parented
    proc.wait()
    procs.stop_tree(proc, grace=1.0)
    assert not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two cores")
def test_pin_places_target_and_load_generator_on_disjoint_cores():
    cores = sorted(os.sched_getaffinity(0))
    try:
        procs.set_placement(True)
        assert procs.target_cores() == len(cores) - 1
        assert "pinned" in procs.placement_note()
        target = procs.spawn(["sleep", "30"], role="target")
        locust = procs.spawn(["sleep", "30"], role="locust")
        try:
            assert psutil.Process(target.pid).cpu_affinity() == cores[1:]
            assert psutil.Process(locust.pid).cpu_affinity() == cores[:1]
        finally:
            procs.stop_tree(target)
            procs.stop_tree(locust)
    finally:
        procs.set_placement(False)
    assert procs.target_cores() == len(cores)
    assert "no pinning" in procs.placement_note()


def test_target_environment_ignores_the_users_knobs_and_uvicorn_settings(monkeypatch):
    from harness.run.launch import target_base_env

    monkeypatch.setenv("POOL_SIZE", "abc")
    monkeypatch.setenv("UVICORN_LIMIT_CONCURRENCY", "1")
    monkeypatch.setenv("KEEP_ME", "1")
    env = target_base_env()
    assert "POOL_SIZE" not in env and "UVICORN_LIMIT_CONCURRENCY" not in env
    assert env["KEEP_ME"] == "1"


def test_a_signal_while_spawning_is_raised_once_the_child_is_registered(monkeypatch):
    """The CLI's Ctrl-C handler defers while Popen runs, so the child is never lost."""
    real_popen = procs.subprocess.Popen

    def popen_interrupted(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        procs.interrupt_or_defer(KeyboardInterrupt())  # as if Ctrl-C landed inside Popen
        return proc

    monkeypatch.setattr(procs.subprocess, "Popen", popen_interrupted)
    before = set(procs._live)
    with pytest.raises(KeyboardInterrupt):
        procs.spawn(["sleep", "30"])
    [child] = procs._live - before  # registered, so stop_all can still reach it
    procs.stop_tree(child)  # only this child: stop_all would also stop the session's upstream fixture
    assert child.poll() is not None and child not in procs._live
    with pytest.raises(KeyboardInterrupt):  # outside a spawn the signal is raised at once
        procs.interrupt_or_defer(KeyboardInterrupt())
