"""One table of the audit's verdict kinds: a short name (what `--fail-on` takes), how to recognise it
in the verdict text of `audit.verdict` (by prefix: "failing: timeout 12%" and "failing: 401
Unauthorized 100%" are both `failing`), a general advice line, and its severity for the CI gate.

Adding a kind is one record here, the rule that produces its text (audit.verdict, over judge/'s
thresholds) and one test. The row-specific advice (the call site, the token count) stays in
audit.advice; `advice` here is what a reader of the gate's output needs when that is absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "notice"]  # GitHub's annotation levels, in that order


@dataclass(frozen=True)
class VerdictKind:
    name: str                   # short name: --fail-on, JUnit, annotations
    prefixes: tuple[str, ...]   # the verdict text starts with one of these
    advice: str                 # what to do, in general
    severity: Severity          # how the gate reports it (error fails by default)

    def matches(self, verdict: str) -> bool:
        return verdict.startswith(self.prefixes)


# Ordered as audit.verdict decides: the first kind whose prefix matches wins.
KINDS: tuple[VerdictKind, ...] = (
    VerdictKind("failing", ("failing",),
                "fix the failures first: their causes are in raw/<cell>/locust_failures.csv", "error"),
    VerdictKind("blocks", ("blocks the event loop",),
                "a call in an async def blocks the loop: make the route def, or await an async client",
                "error"),
    VerdictKind("lock", ("waits on a lock",),
                "requests queue on one lock: hold it for less time, or shard what it protects", "warning"),
    VerdictKind("thread-pool", ("limited by the thread pool",),
                "def routes waited for a thread: raise anyio's thread limiter, or make the route async",
                "warning"),
    VerdictKind("db-pool", ("limited by the database pool",),
                "requests waited for a database connection: a larger pool (within max_connections), "
                "or shorter transactions", "warning"),
    VerdictKind("cpu", ("limited by workers' CPU",),
                "add workers, or move the CPU work to a process pool", "warning"),
    VerdictKind("fine", ("fine",), "nothing to change at this load", "notice"),
)
BY_NAME: dict[str, VerdictKind] = {k.name: k for k in KINDS}
UNKNOWN = VerdictKind("unknown", (), "a verdict this table does not know: read it in audit.csv", "warning")
SKIPPED = "skipped"  # audit.csv's rows for routes the schema gave but the audit did not measure
DEFAULT_FAIL_ON: tuple[str, ...] = tuple(k.name for k in KINDS if k.severity == "error")


class UnknownKind(ValueError):
    """A --fail-on name not in the table; the message is one line with the known names."""


def kind_of(verdict: str) -> VerdictKind:
    """The kind of one verdict text; UNKNOWN for a text no record recognises (never raises)."""
    return next((k for k in KINDS if k.matches(verdict)), UNKNOWN)


def parse_names(text: str) -> tuple[str, ...]:
    """'blocks,failing' → ('blocks', 'failing'); UnknownKind (one line, with the list) otherwise."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise UnknownKind(f"--fail-on needs at least one kind: {', '.join(BY_NAME)}")
    bad = [n for n in names if n not in BY_NAME]
    if bad:
        raise UnknownKind(f"--fail-on: unknown verdict kind {bad[0]!r}; the kinds are: {', '.join(BY_NAME)}")
    return names
