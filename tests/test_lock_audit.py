"""`bench.py audit` for real on an app whose `async def` route queues behind an asyncio.Semaphore(2)
held 50 ms: the wait profile names the semaphore's line, and the plain route gets no wait verdict."""

from __future__ import annotations

import csv

from tests.test_audit_run import ROOT, bench

LOCK_APP = ROOT / "tests" / "lock_app"
GATE_LINE = next(i for i, line in enumerate(open(LOCK_APP / "gate.py"), 1) if "async with GATE" in line)


def test_a_semaphore_is_named_by_its_line_and_the_healthy_route_is_fine(tmp_path):
    out = tmp_path / "audit"
    done = bench("audit", "gate:app", "--app-dir", str(LOCK_APP), "--workers", "1", "--users", "16",
                 "--duration", "4", "--warmup", "1", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out / "audit.csv", newline="") as fh:
        rows = {r["route"]: r for r in csv.DictReader(fh)}
    gated, ping = rows["/gated"], rows["/ping"]
    assert gated["verdict"].startswith(f"waits on a lock / semaphore at gate.py:{GATE_LINE} "
                                       "(asyncio.Semaphore.acquire, "), gated
    assert gated["wait"].startswith("pool or lock wait "), gated
    assert not ping["verdict"].startswith(("waits", "limited by the database pool")), ping
    with open(out / "results.csv", newline="") as fh:
        raw = out / next(r["raw_dir"] for r in csv.DictReader(fh) if r["scenario"] == "/gated")
    folded = (raw / "waits.folded").read_text()
    assert f"gate.py:gated:{GATE_LINE}" in folded and "[lock]" in folded
