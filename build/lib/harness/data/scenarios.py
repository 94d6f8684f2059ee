"""Registry of scenarios: CLI name → one record (endpoint, title, work per request, Locust file).

Adding a scenario is one Locust file in `scenarios/` plus one entry here (plus an endpoint in every
target if the path is new). The ceiling model, the validity check, the charts and the tests read
these records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import ROOT


@dataclass(frozen=True)
class Scenario:
    path: str                    # the work endpoint the closed-loop users request
    title: str                   # chart headline, e.g. "I/O-bound endpoint"
    description: str             # one line for `bench.py list`
    upstream_calls: int | str    # upstream requests per work request: a number, or "fanout" (FANOUT)
    cpu: bool                    # whether a request does CPU_MS of calibrated work
    default: bool = False        # in the default sweep

    def calls(self, fanout: int) -> int:
        return fanout if self.upstream_calls == "fanout" else int(self.upstream_calls)


SCENARIOS: dict[str, Scenario] = {
    "io": Scenario("/io", "I/O-bound endpoint", "I/O-bound: GET /io, FANOUT upstream calls of IO_MS each",
                   upstream_calls="fanout", cpu=False, default=True),
    "cpu": Scenario("/cpu", "CPU-bound endpoint", "CPU-bound: GET /cpu, CPU_MS of calibrated CPU work",
                    upstream_calls=0, cpu=True, default=True),
    "mixed": Scenario("/mixed", "Mixed endpoint", "mixed: GET /mixed, one upstream call then CPU_MS of work",
                      upstream_calls=1, cpu=True, default=True),
    "health": Scenario("/health", "Framework overhead",
                       "framework overhead: closed-loop users on GET /health (probe on/off comparisons)",
                       upstream_calls=0, cpu=False),
    "db": Scenario("/db", "Database endpoint",
                   "database: GET /db, DB_QUERIES × pg_sleep(DB_MS) in one transaction on a real PostgreSQL",
                   upstream_calls=0, cpu=False),
}


def locustfile(name: str) -> Path:
    """scenarios/<name>.py: the Locust file of a registered scenario."""
    return ROOT / "scenarios" / f"{name}.py"
