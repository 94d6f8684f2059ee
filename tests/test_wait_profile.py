"""The wait profile (targets/wait_sampler.py → harness/judge/wait_profile.py): requests in flight
sampled from a thread, each sample's category decided on its frames, the lock site named."""

from __future__ import annotations

import asyncio
import time

import anyio.to_thread

from harness.judge import collect, wait_profile
from targets import wait_sampler
from targets.probe import WorkerProbe
from tests.lock_app import gate

GATE_LINE = next(i for i, line in enumerate(open(gate.__file__), 1) if "async with GATE" in line)


async def _serve(path: str, route) -> None:
    key = wait_sampler.begin(path)  # as the wrapper does around the app
    try:
        await route()
    finally:
        wait_sampler.end(key)


def _blocking_def_route() -> None:
    time.sleep(0.05)


async def _def_route() -> None:
    await anyio.to_thread.run_sync(_blocking_def_route)


async def _load(probe: WorkerProbe, rounds: int) -> None:
    probe.mark_ready()
    probe.start()
    try:
        for _ in range(rounds):
            await asyncio.gather(*(_serve("/gated", gate.gated) for _ in range(8)),
                                 *(_serve("/ping", gate.ping) for _ in range(2)),
                                 *(_serve("/def", _def_route) for _ in range(2)))
    finally:
        await probe.stop()


def test_a_semaphore_is_named_by_its_line_and_a_thread_by_its_sleep(tmp_path, monkeypatch):
    monkeypatch.setenv("WAIT_HZ", "50")
    probe = WorkerProbe(str(tmp_path))
    t0 = time.time()
    asyncio.run(_load(probe, rounds=10))  # 10 × 4 × 50 ms behind 2 slots: about 2 s
    row, _ = collect.probe_stats(tmp_path, t0 - 1, time.time() + 1)
    profile = row["_waits"]
    gated, pinged, threaded = (profile.by_path.get(p, {}) for p in ("/gated", "/ping", "/def"))
    # 8 requests share 2 slots: about 3/4 of their time in the semaphore, the rest in the sleep.
    assert gated["lock"] > gated["io"] > 0, gated
    assert row["wait_top"] == "pool or lock wait" and row["wait_lock_pct"] > 40, row
    assert row["wait_site"] == f"gate.py:{GATE_LINE} (asyncio.Semaphore.acquire)", row
    assert "lock" not in pinged and "lock" not in threaded, (pinged, threaded)
    assert threaded["io"] > 0, threaded  # the worker thread's time.sleep, read from its source line


def test_categories_from_frames():
    app, lib = "/srv/app/main.py", "/venv/lib/python3.11/site-packages"
    assert wait_profile.classify("stalled", f"{app}:route:3")[0] == "stalled"
    tokens = f"{app}:route:3;{lib}/anyio/_backends/_asyncio.py:CapacityLimiter.acquire_on_behalf_of:9"
    assert wait_profile.classify("wait", tokens) == ("tokens", "")
    pool = f"{app}:route:7;{lib}/asyncpg/pool.py:Pool._acquire:88;{lib}/asyncpg/pool.py:Pool._acquire_impl:80"
    assert wait_profile.classify("wait", pool) == ("lock", "main.py:7 (asyncpg.Pool._acquire_impl)")
    assert wait_profile.classify("wait", f"{app}:route:7;{lib}/httpx/_client.py:AsyncClient.get:1")[0] == "io"
    assert wait_profile.classify("run", f"{app}:route:7")[0] == "app"
    driver = f"{app}:route:7;{lib}/psycopg/cursor.py:Cursor.execute:5"
    assert wait_profile.classify("thread", driver)[0] == "io"


def test_no_sampler_no_registration():
    wait_sampler.ENABLED = False
    assert wait_sampler.begin("/x") is None and not wait_sampler.IN_FLIGHT


def test_the_lock_verdict_names_the_site_and_a_small_share_is_only_evidence():
    from harness.answer import audit
    from tests.test_audit_routes import HEALTHY

    row = {**HEALTHY, "wait_lock_pct": 74.0, "wait_site": "gate.py:15 (asyncio.Semaphore.acquire)",
           "wait_top": "pool or lock wait", "wait_top_pct": 74.0}
    text = audit.verdict(row)
    assert text == ("waits on a lock / semaphore at gate.py:15 (asyncio.Semaphore.acquire, "
                    "74% of request time)")
    assert "gate.py:15" in audit.advice(row, text)
    # 12% on a lock is not the limit, but it is a queue: no "fine" on it
    assert audit.verdict({**row, "wait_lock_pct": 12.0}).startswith("unexplained (queued: requests waited")
    assert audit.verdict({**HEALTHY, "wait_top": "network or database I/O", "wait_top_pct": 90.0,
                          "wait_lock_pct": 0.0}) == "fine at this load"


def test_the_report_draws_one_bar_per_route_with_its_largest_wait(tmp_path):
    import pandas as pd

    from harness.present.wait_chart import section_waits

    profile = wait_profile.reduce([("/gated\twait\t/srv/gate.py:gated:15;"
                                    "/usr/lib/python3.11/asyncio/locks.py:Semaphore.acquire:387", 7),
                                   ("/gated\twait\t/srv/gate.py:gated:16", 1)])
    (tmp_path / "raw" / "c1").mkdir(parents=True)
    wait_profile.write(tmp_path / "raw" / "c1", profile)
    rows = pd.DataFrame([{"raw_dir": "raw/c1", "workers": 1.0, "thread_tokens": float("nan")},
                         {"raw_dir": "raw/none", "workers": 1.0, "thread_tokens": 80.0}])
    html = section_waits(tmp_path, rows)
    assert html.count("<rect") == 2 and "/gated (W=1): pool or lock wait 88%" in html, html
    assert section_waits(tmp_path, rows.iloc[1:]) == ""


async def _pooled_query(pool) -> None:
    async with pool.acquire() as conn:  # the asyncpg pool's acquire: the site the profile names
        await conn.execute("SELECT pg_sleep(0.05)")


POOL_LINE = next(i for i, line in enumerate(open(__file__), 1) if "async with pool.acquire()" in line)


def test_an_asyncpg_pool_of_two_is_named_by_its_acquire(tmp_path, monkeypatch, postgres):
    import asyncpg

    monkeypatch.setenv("WAIT_HZ", "50")

    async def load(probe: WorkerProbe) -> None:
        pool = await asyncpg.create_pool(postgres.url, min_size=2, max_size=2)
        probe.mark_ready()
        probe.start()
        try:
            for _ in range(6):  # 8 requests on 2 connections, 50 ms each: about 1.2 s
                await asyncio.gather(*(_serve("/pooled", lambda: _pooled_query(pool)) for _ in range(8)))
        finally:
            await probe.stop()
            await pool.close()

    probe = WorkerProbe(str(tmp_path))
    t0 = time.time()
    asyncio.run(load(probe))
    row, _ = collect.probe_stats(tmp_path, t0 - 1, time.time() + 1)
    assert row["wait_top"] == "pool or lock wait" and row["wait_lock_pct"] > 40, row
    site = row["wait_site"]
    assert site.startswith(f"test_wait_profile.py:{POOL_LINE} (asyncpg."), site
