"""I/O-bound scenario: closed-loop users on GET /io (FANOUT upstream calls of IO_MS each);
plus the /health probe.

Run alone: locust -f scenarios/io.py -H http://127.0.0.1:8000
"""

from _base import HealthProbe, WorkUser

__all__ = ["IoUser", "HealthProbe"]


class IoUser(WorkUser):
    path = "/io"
